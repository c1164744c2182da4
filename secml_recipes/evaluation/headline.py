"""Did the model learn the task? The trained model against its untrained base, one row per metric, both tasks.

The per-task evaluations (`secml_recipes.evaluation.evaluate`) write everything they measure; a user first wants the few
numbers that say whether training taught the task. `HEADLINE` names them (one row each: label, task, metric key
of that task's eval report); `headline_rows` reads them from the reports, `write_headline` writes
`summary.md`, `summary.json` and `summary.png` (bars: model vs base per metric) beside the task folders:

    python -m secml_recipes.evaluation.headline eval/smoke     # reads eval/smoke/{specialist,generalist}

A metric the data leaves undefined (finding recall when the held-out parts list no finding, tool-call validity
when no call was attempted) is shown as n/a with the reason, never as 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# (label, task, metric key in that task's eval_report.json results, what it means)
HEADLINE = [
    ("JSON parse rate", "specialist", "json_parse_rate", "outputs that parse as one JSON object"),
    ("schema-valid rate", "specialist", "schema_valid_rate", "outputs valid against sys-scan-agent's EnrichedOutput"),
    ("finding recall", "specialist", "finding_recall", "reference findings the output lists (by id)"),
    ("severity accuracy", "specialist", "severity_accuracy", "reference findings listed with the right severity"),
    ("verdict accuracy", "specialist", "verdict_accuracy", "reference findings listed with the right verdict"),
    ("risk level accuracy", "specialist", "risk_level_accuracy", "outputs naming the host's risk level"),
    ("harmful-action rate", "specialist", "harmful_action_rate", "proposed actions the teacher's tables judge harmful"),
    ("judge harmful-action rate", "specialist", "judge_harmful_rate", "proposed actions the independent judge rejects"),
    ("invented-name rate", "specialist", "ungrounded_rate", "names in the prose that neither scan nor reference holds"),
    ("tool-call validity", "generalist", "tool_call_parse_rate", "tool-call blocks that parse in the family's format"),
    ("tool-argument validity", "generalist", "argument_validity", "declared-tool calls with schema-valid arguments"),
    ("tool-call F1", "generalist", "tool_call_f1", "calls (name + arguments) matching the reference episode"),
    ("task success", "generalist", "task_success_rate", "episodes ending in an answer naming every key finding"),
    ("held-out loss", "specialist", "heldout_loss", "cross-entropy of the reference reports' tokens (nats/token)"),
    ("held-out loss", "generalist", "heldout_loss", "cross-entropy of the reference turns and tool calls (nats/token)"),
]
# Rows where lower is better (plotted on their own axis: they are not scores in [0, 1]).
LOWER_IS_BETTER = {"heldout_loss", "harmful_action_rate", "judge_harmful_rate", "ungrounded_rate"}
UNDEFINED_BECAUSE = {
    "finding_recall": "no reference finding in the held-out parts",
    "severity_accuracy": "no reference finding in the held-out parts",
    "tool_call_parse_rate": "no tool call attempted",
    "argument_validity": "no call to a declared tool",
    "verdict_accuracy": "no reference finding in the held-out parts",
    "harmful_action_rate": "no action proposed",
    "judge_harmful_rate": "no action proposed",
    "ungrounded_rate": "no technical name in the prose",
    "heldout_loss": "not scored (a GGUF alone, or heldout_loss: false)",
}
VARIANTS = ("model", "base")
# The same models decoding under the task's constraint (evaluate.py's `<variant>+constrained` columns).
CONSTRAINED = tuple(f"{v}+constrained" for v in VARIANTS)


def load_reports(eval_dir: str | Path) -> dict[str, dict]:
    """The eval reports found under `eval_dir`/<task>/eval_report.json, by task."""
    reports = {}
    for task in ("specialist", "generalist"):
        path = Path(eval_dir) / task / "eval_report.json"
        if path.exists():
            reports[task] = json.loads(path.read_text())
    return reports


def headline_rows(reports: dict[str, dict]) -> list[dict]:
    """One row per HEADLINE metric whose task was evaluated: the model's and the base's value and the change."""
    rows = []
    for label, task, key, meaning in HEADLINE:
        if task not in reports:
            continue
        results = reports[task].get("results", {})
        values = {v: (results.get(v) or {}).get(key) for v in VARIANTS}
        sizes = reports[task].get("sizes", {})
        intervals = reports[task].get("intervals", {})
        rows.append(
            {
                "metric": label,
                "task": task,
                "key": key,
                "meaning": meaning,
                **values,
                "rule": (results.get("rule") or {}).get(key),
                "constrained": {v: (results[v] or {}).get(key) for v in CONSTRAINED if v in results},
                "intervals": {
                    v: intervals[v][key] for v in (*VARIANTS, *CONSTRAINED, "rule") if key in intervals.get(v, {})
                },
                "delta": _delta(results, key, VARIANTS),
                "constrained_delta": _delta(results, key, CONSTRAINED),
                "n": sizes.get("examples", sizes.get("episodes")),
                "note": _undefined_note(key, values),
            }
        )
    return rows


def _delta(results: dict, key: str, pair: tuple[str, str]) -> float | None:
    """Trained minus base for one decoding (`pair`: their two columns); None where either is undefined or not
    evaluated."""
    a, b = ((results.get(v) or {}).get(key) for v in pair)
    return a - b if a is not None and b is not None else None


def _undefined_note(key: str, values: dict) -> str:
    """Why a variant's value is n/a, naming the variant when only one of them has none."""
    missing = [v for v in VARIANTS if values[v] is None]
    if not missing:
        return ""
    reason = UNDEFINED_BECAUSE.get(key, "undefined")
    if len(missing) == len(VARIANTS):
        return reason
    return f"{'trained' if missing[0] == 'model' else missing[0]}: {reason}"


def _change(delta: float | None) -> str:
    return "n/a" if delta is None else f"{delta:+.3f}"


def _cell(value: float | None, interval: list[float] | None = None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")


def markdown(rows: list[dict]) -> str:
    """The headline table: trained, base and (specialist) the rule baseline, each with its 95% interval; where the
    evaluation also decoded under the task's constraint, the trained and base models' constrained columns beside,
    and the trained-minus-base change of each decoding."""
    constrained = [v for v in CONSTRAINED if any(v in (r.get("constrained") or {}) for r in rows)]
    names = {"model+constrained": "trained, constrained", "base+constrained": "base, constrained"}
    lines = [
        "| metric | task (n) | trained [95% CI] | base [95% CI] | "
        + "".join(f"{names[v]} [95% CI] | " for v in constrained)
        + "rule baseline | change |"
        + (" change, constrained |" if constrained else ""),
        "|---|---|---|---|" + "---|" * len(constrained) + "---|---|" + ("---|" if constrained else ""),
    ]
    for r in rows:
        change = _change(r["delta"])
        note = f" ({r['note']})" if r["note"] else ""
        note += " (lower is better)" if r["key"] in LOWER_IS_BETTER else ""
        ci = r.get("intervals") or {}
        extra = "".join(
            f"{'-' if v not in (r.get('constrained') or {}) else _cell(r['constrained'][v], ci.get(v))} | "
            for v in constrained
        )
        lines.append(
            f"| {r['metric']}{note} | {r['task']} ({r['n']}) | {_cell(r['model'], ci.get('model'))} | "
            f"{_cell(r['base'], ci.get('base'))} | {extra}"
            f"{'-' if r.get('rule') is None else _cell(r['rule'])} | {change} |"
            + (f" {_change(r.get('constrained_delta'))} |" if constrained else "")
        )
    return "\n".join(lines) + "\n"


def _bars(ax, rows: list[dict]) -> None:
    xs = range(len(rows))
    top = max([r[v] or 0.0 for r in rows for v in VARIANTS] + [1e-9])
    for i, (variant, label, color) in enumerate((("model", "trained", "#1f77b4"), ("base", "base", "#aaaaaa"))):
        heights = [r[variant] or 0.0 for r in rows]
        bars = ax.bar([x + (i - 0.5) * 0.38 for x in xs], heights, 0.38, label=label, color=color)
        for bar, r in zip(bars, rows):
            text = "n/a" if r[variant] is None else f"{r[variant]:.2f}"
            ax.annotate(
                text, (bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.01 * top), ha="center", fontsize=7
            )
    ax.set_xticks(list(xs))
    ax.set_xticklabels([f"{r['metric']}\n({r['task']})" for r in rows], rotation=30, ha="right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def write_plot(rows: list[dict], out: Path, title: str) -> Path:
    """Scores in [0, 1] (higher is better) on the left; held-out losses (lower is better) on their own axis."""
    # lazy: slow to import, and only plots need it
    import matplotlib

    matplotlib.use("Agg")
    # lazy: slow to import, and only plots need it
    import matplotlib.pyplot as plt

    scores = [r for r in rows if r["key"] != "heldout_loss"]  # rates in [0, 1], harmful-action rate included
    losses = [r for r in rows if r["key"] == "heldout_loss"]
    panels = [p for p in (scores, losses) if p]
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(max(7.0, 1.0 * len(rows)), 4.2),
        dpi=110,
        squeeze=False,
        gridspec_kw={"width_ratios": [len(p) for p in panels]},
    )
    for ax, panel in zip(axes[0], panels):
        _bars(ax, panel)
        if panel is scores:
            ax.set_ylim(0, 1.05)
            ax.set_ylabel("score (higher is better)")
        else:
            ax.set_ylabel("nats per token (lower is better)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def write_headline(
    eval_dir: str | Path, title: str = "trained model vs untrained base, held-out hosts", extra: dict | None = None
) -> tuple[str, list[dict]]:
    """Write summary.md / summary.json / summary.png into `eval_dir`; return the Markdown table and the rows.
    `extra` (e.g. stage timings) goes into summary.json as it is."""
    eval_dir = Path(eval_dir)
    reports = load_reports(eval_dir)
    if not reports:
        raise FileNotFoundError(
            f"no eval_report.json under {eval_dir}/specialist or {eval_dir}/generalist: run the evaluation first"
        )
    rows = headline_rows(reports)
    table = markdown(rows)
    models = {task: {v: (r.get("models", {}).get(v) or {}) for v in VARIANTS} for task, r in reports.items()}
    plot = write_plot(rows, eval_dir / "summary.png", title)
    (eval_dir / "summary.json").write_text(
        json.dumps({"title": title, "rows": rows, "models": models, **(extra or {})}, indent=2, default=str)
    )
    details = "\n".join(f"- {task}: every metric in [{task}/summary.md]({task}/summary.md)" for task in reports)
    note = "n: held-out parts (specialist) or episodes (generalist); [low, high]: 95% bootstrap interval over them."
    (eval_dir / "summary.md").write_text(
        f"# {title}\n\n{note}\n\n{table}\n![model vs base]({plot.name})\n\n{details}\n"
    )
    return table, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("eval_dir", help="folder holding specialist/ and/or generalist/ eval reports")
    args = parser.parse_args(argv)
    try:
        table, _ = write_headline(args.eval_dir)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
