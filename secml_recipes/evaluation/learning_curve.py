"""Task metrics against training steps: each saved checkpoint of a run, evaluated like the final model.

    python -m secml_recipes.evaluation.learning_curve recipes/smoke/eval-specialist.yaml \\
        --run models/specialist_model --out docs/learning-curve [--key value ...]

A held-out loss that falls says little about whether the model writes usable reports (the smoke model once
reached 0.63 nats/token and still wrote no parseable one), so the curve is of the task's own metrics: the
evaluation recipe's held-out examples are scored for the untrained base (step 0), every `checkpoint-N` of the run
and the run's final weights, each with its 95% interval (`evaluation/intervals.py`), with free decoding and, unless
`--no-constrain`, under the task's constraint (solid and dashed lines: what the model knows, and what it delivers
once the format is enforced). It writes `curve.json`,
`curve.md` (one row per step) and `curve.png` (one line per metric) to `--out`; `make learning-curve` trains a
longer CPU run and draws its curve. The same command draws a production run's curve on a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from secml_recipes.atomic import write_json_atomic, write_text_atomic
from secml_recipes.command_help import CommandHelpFormatter
from secml_recipes.deploy.gguf import DeployError
from secml_recipes.evaluation.evaluate import EvalArguments, evaluate
from secml_recipes.evaluation.report import format_value
from secml_recipes.train.checkpoints import CHECKPOINT, checkpoint_problem
from secml_recipes.train.recipe import RecipeError, load_recipe

# The metrics drawn per task (the headline's, evaluation/headline.py); every metric is in curve.json.
CONSTRAINED = "model+constrained"  # evaluate's column for the constrained pass
CURVE_METRICS = {
    "specialist": [
        "json_parse_rate",
        "schema_valid_rate",
        "finding_recall",
        "severity_accuracy",
        "verdict_accuracy",
        "risk_level_accuracy",
        "harmful_action_rate",
    ],
    "generalist": ["tool_call_parse_rate", "argument_validity", "tool_call_f1", "task_success_rate"],
}


def run_points(run: Path, base: str | None) -> list[tuple[int, str]]:
    """(step, model folder) to evaluate: the base at step 0, every complete checkpoint, the final weights."""
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run folder (train first, e.g. make smoke-train)")
    points = [(0, base)] if base else []
    for folder in sorted(run.iterdir(), key=lambda p: int(m.group(1)) if (m := CHECKPOINT.match(p.name)) else -1):
        if CHECKPOINT.match(folder.name) and checkpoint_problem(folder, model_only=True) is None:
            points.append((int(CHECKPOINT.match(folder.name).group(1)), str(folder)))
    state = run / "trainer_state.json"
    final_step = json.loads(state.read_text()).get("global_step") if state.exists() else None
    has_weights = any(run.glob("*.safetensors"))
    if has_weights and final_step is not None and final_step not in {s for s, _ in points}:
        points.append((int(final_step), str(run)))
    if len(points) < 2:
        raise FileNotFoundError(f"{run}: fewer than two points to draw (no complete checkpoint-N or final weights)")
    return points


def curve_rows(args: EvalArguments, points: list[tuple[int, str]], out: Path) -> list[dict]:
    """One evaluation per point (no baselines: the base is the step-0 point), in its own folder under `out`."""
    rows = []
    for step, model in points:
        point_args = EvalArguments(**vars(args))
        point_args.model, point_args.adapter, point_args.base_model = model, None, None
        point_args.baselines, point_args.heldout_loss = [], True
        point_args.output_dir = str(out / f"step-{step}")
        print(f"[learning curve] step {step}: {model}", flush=True)
        report = evaluate(point_args)
        intervals = report.get("intervals", {})
        rows.append(
            {
                "step": step,
                "model": model,
                "n": report["sizes"].get("examples", report["sizes"].get("episodes")),
                "results": report["results"]["model"],
                "intervals": intervals.get("model", {}),
                "constrained_results": report["results"].get(CONSTRAINED),
                "constrained_intervals": intervals.get(CONSTRAINED, {}),
            }
        )
    return rows


def markdown(rows: list[dict], metrics: list[str], constrained: bool = False) -> str:
    """Steps as rows, the task's metrics (and held-out loss) as columns, 95% intervals in brackets; `constrained`:
    the constrained pass's numbers (the held-out loss does not depend on decoding, so only the free table has it)."""
    columns = metrics if constrained else [*metrics, "heldout_loss"]
    key = "constrained_" if constrained else ""
    lines = ["| step | n | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for r in rows:
        results, intervals = r.get(f"{key}results") or {}, r.get(f"{key}intervals") or {}
        cells = [format_value(results.get(m), intervals.get(m)) for m in columns]
        lines.append(f"| {r['step']} | {r['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_plot(rows: list[dict], metrics: list[str], path: Path, title: str) -> Path:
    # lazy: slow to import, and only the plot needs it
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: as above

    fig, (rates, loss) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110, gridspec_kw={"width_ratios": [3, 1]})
    steps = [r["step"] for r in rows]
    for m in metrics:
        values = [r["results"].get(m) for r in rows]
        bound = [(r.get("constrained_results") or {}).get(m) for r in rows]
        color = None
        if any(v is not None for v in values):
            (line,) = rates.plot(steps, [float("nan") if v is None else v for v in values], marker="o", label=m)
            color = line.get_color()
        if any(v is not None for v in bound):
            rates.plot(
                steps,
                [float("nan") if v is None else v for v in bound],
                marker="s",
                linestyle="--",
                color=color,
                label=f"{m} (constrained)",
            )
    rates.set_ylim(-0.02, 1.02)
    rates.set_xlabel("training step (0: untrained base)")
    rates.set_ylabel("rate on held-out examples (dashed: constrained)")
    rates.legend(fontsize=7)
    rates.grid(alpha=0.3)
    losses = [r["results"].get("heldout_loss") for r in rows]
    loss.plot(steps, [float("nan") if v is None else v for v in losses], marker="o", color="black")
    loss.set_xlabel("training step")
    loss.set_ylabel("held-out loss (nats/token)")
    loss.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m secml_recipes.evaluation.learning_curve",
        description=__doc__.split("\n\n")[0],
        formatter_class=CommandHelpFormatter,
    )
    parser.add_argument("recipe", help="the evaluation recipe whose held-out examples every point is scored on")
    parser.add_argument("--run", required=True, help="training output folder holding checkpoint-N folders")
    parser.add_argument("--out", default="eval/learning-curve", help="folder for curve.{json,md,png} and each point")
    parser.add_argument("--base", help="untrained model for step 0 (default: the recipe's base_model; 'none': skip)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, overrides = parser.parse_known_args(argv)
    try:
        (eval_args,) = load_recipe(args.recipe, overrides, classes=(EvalArguments,))
        base = None if args.base == "none" else args.base or eval_args.base_model
        points = run_points(Path(args.run), base)
        out = Path(args.out)
        rows = curve_rows(eval_args, points, out)
    except (RecipeError, ValueError, KeyError, FileNotFoundError, DeployError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    metrics = CURVE_METRICS[eval_args.task]
    table = markdown(rows, metrics)
    if any(r.get("constrained_results") for r in rows):
        table += "\nUnder the task's constraint (schema and the input's ids enforced at decode time):\n\n"
        table += markdown(rows, metrics, constrained=True)
    title = f"{eval_args.task}: task metrics vs training steps ({args.run}, n = {rows[0]['n']} held-out examples)"
    plot = write_plot(rows, metrics, out / "curve.png", title)
    write_json_atomic(out / "curve.json", {"title": title, "recipe": args.recipe, "run": args.run, "rows": rows})
    note = "[low, high]: 95% bootstrap interval over the held-out examples; step 0 is the untrained base."
    write_text_atomic(out / "curve.md", f"# {title}\n\n{note}\n\n{table}\n![learning curve]({plot.name})\n")
    print(table)
    print(f"[learning curve] wrote {out / 'curve.md'}, {out / 'curve.json'}, {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
