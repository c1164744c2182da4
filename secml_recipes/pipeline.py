"""The whole chain in one command: data -> specialist -> generalist -> evaluation -> quantize -> push.

Usage:
    secml pipeline                            # full profile: production recipes
    secml pipeline --profile smoke            # SmolLM2-135M-Instruct on CPU (what `make smoke` runs)
    secml pipeline --profile tiny             # the tiny stand-in models: every path, in minutes
    secml pipeline --specialist-only --accelerate-config accelerate_configs/tpu.yaml
    secml pipeline --profile tiny --force specialist,eval   # rerun these; old outputs are kept aside

Each stage records a fingerprint of each of its inputs (recipe, overrides, upstream outputs, corpus, and the code
it runs: STAGE_CODE, not the whole package) in a marker once it succeeds. A stage whose fingerprints match is
skipped, so a rerun after a crash continues where it stopped (an interrupted training resumes from its last
checkpoint). A stage whose inputs changed, or one named by --force, never deletes what it made before: the old
output is renamed to `<output>.stale-<UTC time>` beside it (e.g. models/specialist_model.stale-20250101T120000Z)
and the pipeline prints which input changed. Push runs only when a token is in HF_TOKEN/HUGGINGFACE_TOKEN and
--namespace is given.

At the end the pipeline prints how long each stage took and, when both tasks were evaluated, the headline: the
trained models against their untrained base per metric (`evaluation.headline`), also written with a plot to
eval/<profile>/summary.{md,json,png}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from secml_recipes import layout
from secml_recipes.command_help import CommandHelpFormatter
from secml_recipes.evaluation.headline import load_reports, write_headline
from secml_recipes.fingerprint import code_fingerprints, fingerprint_input
from secml_recipes.hub import hub_token
from secml_recipes.train.cpu_allocator import with_cpu_allocator

PACKAGE = Path(__file__).resolve().parent
# Where stage entry modules are found: the repository (or site-packages) holding the package; tests.harness.tiny
# (the tiny profile) is found only in a repository checkout.
ROOT = PACKAGE.parent

# The code each stage runs, named by the module its command starts. A stage's code fingerprint covers that
# module's import closure (`fingerprint.code_files`: imports at any depth, modules named as strings such as `-m`
# subprocesses and importlib.resources packages, the data files beside them), never the whole package: editing the
# serving code (use/) must not retrain a specialist that took days of GPU time, while a change in train/ must.
# Python counts by its AST without docstrings, so comment and docstring edits rerun nothing. What each resolves to
# today (tests/test_pipeline.py pins it; scan/ and teacher/ come in through tasks/ and corpus/):
#   data        scan/ judge/ teacher/ tasks/ corpus/ + the basics (layout, atomic, ...)
#   training    train/ families/ tasks/ corpus/ scan/ teacher/ + basics        (no use/, deploy/, evaluation/)
#   eval        evaluation/ use/ deploy/ train/ tasks/ families/ corpus/ scan/ teacher/ + basics
#   quantize    deploy/ train/ families/ tasks/ corpus/ scan/ teacher/ + basics (no use/, evaluation/)
#   base-models train/base_models.py + basics;  tiny-models tests/harness/tiny.py and what it imports
STAGE_CODE = {
    "data": "secml_recipes.corpus",
    "training": "secml_recipes.train.sft",
    "eval": "secml_recipes.evaluation.evaluate",
    "quantize": "secml_recipes.deploy.quantize",
    "base-models": "secml_recipes.train.base_models",
    "tiny-models": "tests.harness.tiny",
}
# The module `python -m <package>` runs, where the entry is a package.
_MAIN = {"data": "secml_recipes.corpus.__main__"}

SMOKE_DATA_ARGS = ["--specialist", "160", "--generalist", "96", "--seed", "7", "--max-prompt-chars", "2500"]


@dataclass
class Profile:
    """One way to run the chain: its corpus size, accelerate config and models. Its recipes are
    recipes/<name>/{specialist,generalist,quantize,eval-specialist,eval-generalist}.yaml; paths come from `layout`."""

    name: str
    build_args: list[str]
    accelerate_config: str
    tiny_models: bool
    base_models: list[str] = field(default_factory=list)  # registry-shipped models to prepare (base_models.py)

    @property
    def recipes(self) -> str:
        return f"recipes/{self.name}"

    @property
    def corpus(self) -> str:
        return str(layout.corpus(self.name))

    def training_recipe(self, task: str) -> str:
        return f"{self.recipes}/{task}.yaml"

    def eval_recipe(self, task: str) -> str:
        return f"{self.recipes}/eval-{task}.yaml"

    @property
    def quantize(self) -> str:
        return f"{self.recipes}/quantize.yaml"


PROFILES = {
    # The README's first command: SmolLM2-135M-Instruct (a real model from its registry wheel) learns both tasks on
    # CPU within ~20 minutes; many small hosts, few steps (docs/models.md, "The embedded default").
    "smoke": Profile(
        "smoke",
        SMOKE_DATA_ARGS,
        "accelerate_configs/cpu.yaml",
        False,
        base_models=["smollm2"],
    ),
    # The tiny random stand-ins: every stage and code path in a few minutes, numbers meaningless (tests, CI).
    "tiny": Profile(
        "tiny",
        ["--specialist", "48", "--generalist", "48", "--seed", "7", "--max-prompt-chars", "6000"],
        "accelerate_configs/cpu.yaml",
        True,
    ),
    # Production: Llama-3.1-8B-Instruct specialist, Mixtral-8x7B-Instruct generalist, on GPUs.
    "full": Profile(
        "full",
        ["--specialist", "5000", "--generalist", "5000", "--seed", "1234"],
        "accelerate_configs/single_gpu.yaml",
        False,
    ),
}
STAGES = ["data", "specialist", "generalist", "eval", "quantize", "push"]
# What --force names: the chain's stages and the models they start from.
FORCEABLE = [*STAGES[:-1], "tiny-models", "base-models"]
# Each stage this invocation ran: wall seconds and CPU seconds of its commands (None: skipped as up to date). CPU
# seconds say what a stage costs on a machine shared with other work, where wall time says little.
STAGE_SECONDS: dict[str, dict | None] = {}


def stage_inputs(inputs: list[str | Path], extra: list[str], code: str | None = None) -> dict[str, str]:
    """Each input's fingerprint by name, so a rerun can say which one changed: every path input by content,
    `settings` for the extra values (overrides), and `code:<file>` for each file of the code the stage runs
    (`code` names a STAGE_CODE key)."""
    fps = {str(item): fingerprint_input(Path(item)) for item in inputs}
    fps["settings"] = hashlib.sha256(json.dumps(extra).encode()).hexdigest()
    if code is not None:
        entry = STAGE_CODE[code]
        fps |= {f"code:{rel}": fp for rel, fp in code_fingerprints([entry, f"{entry}.__main__"], ROOT).items()}
    return fps


def stage_fingerprint(inputs: list[str | Path], extra: list[str], code: str | None = None) -> str:
    return _combine(stage_inputs(inputs, extra, code))


def _combine(fps: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(fps, sort_keys=True).encode()).hexdigest()


def _what_changed(old: dict | None, new: dict[str, str]) -> str:
    """Names the inputs whose fingerprints differ between a stage's record and now."""
    if not old:
        return "its record names no inputs (written before per-input records, or not by the pipeline)"
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    code = [k.removeprefix("code:") for k in changed if k.startswith("code:")]
    parts = [k for k in changed if not k.startswith("code:")]
    if code:
        parts.append(f"code: {', '.join(code[:3])}" + (f" and {len(code) - 3} more" if len(code) > 3 else ""))
    return "changed: " + "; ".join(parts)


def set_aside(output: Path, marker: Path | None = None) -> Path:
    """Rename `output` to `<output>.stale-<UTC time>` beside it (`-2`, `-3`, ... when that is taken) and return the
    new path. Nothing is deleted: a stale model may still be the best one there is, and its stage record goes
    with it (copied in, or beside a file, when the marker lives elsewhere)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target, n = output.with_name(f"{output.name}.stale-{stamp}"), 2
    while target.exists() or target.is_symlink():
        target, n = output.with_name(f"{output.name}.stale-{stamp}-{n}"), n + 1
    output.rename(target)
    if marker is not None and marker.is_file():
        keep = target / marker.name if target.is_dir() else target.with_name(target.name + ".stage.json")
        shutil.copyfile(marker, keep)
    return target


def quantize_outputs(recipe: str) -> list[Path]:
    """What the quantize recipe's models become: merged model, GPTQ folder, GGUF folder and report per model name."""
    try:
        models = (yaml.safe_load(Path(recipe).read_text(encoding="utf-8")) or {}).get("models") or []
    except (OSError, yaml.YAMLError, AttributeError):
        return []  # the quantize command itself says what is wrong with the recipe
    names = [m["name"] for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)]
    return [
        path
        for name in names
        for path in (
            layout.merged_model(name),
            layout.gptq_model(name),
            layout.gguf_dir(name),
            layout.quant_report(name),
        )
    ]


def _has_work(output: Path) -> bool:
    return output.is_file() or (output.is_dir() and any(output.iterdir()))


def _marker(marker: Path) -> dict:
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(cmd: list[str]) -> None:
    print(f"[secml pipeline] $ {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True, env=with_cpu_allocator(dict(os.environ)))


def run_stage(
    name: str,
    marker: Path,
    inputs: list,
    extra: list[str],
    cmd_list: list[list[str]],
    output: Path | list[Path] | None = None,
    code: str | None = None,
    force: bool = False,
) -> bool:
    """Run the commands unless the marker says they finished on these inputs (or `force`). Returns whether it ran.

    The marker is written as 'running' before the commands and 'done' after, with each input's fingerprint: a
    rerun with the same inputs after a crash runs the stage again in the same folder (training resumes from its
    checkpoint); a rerun with changed inputs, or a forced one, first moves `output` (one path or several) aside
    (`set_aside`) and says which input changed, so nothing trained on other inputs is resumed and nothing is
    deleted."""
    fps = stage_inputs(inputs, extra, code)
    fp = _combine(fps)
    state = _marker(marker)
    if not force and state.get("fingerprint") == fp and state.get("status") == "done":
        print(f"[secml pipeline] {name}: up to date, skipped")
        STAGE_SECONDS.setdefault(name, None)
        return False
    outputs = output if isinstance(output, list) else [] if output is None else [output]
    # Made by this pipeline from other inputs (its record says so), or forced: set aside. An output with no record
    # was made outside the pipeline (`make base-models`, a training run by hand): its command continues it in place,
    # as a rerun after a crash does (base models are kept when prepared, training resumes from its checkpoint).
    made_from_other_inputs = bool(state) and state.get("fingerprint") != fp
    stale = [out for out in outputs if _has_work(out)] if force or made_from_other_inputs else []
    if stale:
        why = "forced (--force)" if force else _what_changed(state.get("inputs"), fps)
        for out in stale:
            moved = set_aside(out, None if marker.is_relative_to(out) else marker)
            print(f"[secml pipeline] {name}: moved {out} aside to {moved}; {why}", flush=True)
    marker.parent.mkdir(parents=True, exist_ok=True)
    record = {"stage": name, "fingerprint": fp, "inputs": fps}
    marker.write_text(json.dumps(record | {"status": "running"}, indent=1))
    started, cpu = time.perf_counter(), _children_cpu()
    try:
        for cmd in cmd_list:
            _run(cmd)
    except subprocess.CalledProcessError:
        STAGE_SECONDS[name] = {
            "wall": round(time.perf_counter() - started, 1),
            "cpu": round(_children_cpu() - cpu, 1),
            "failed": True,
        }
        raise
    STAGE_SECONDS[name] = {"wall": round(time.perf_counter() - started, 1), "cpu": round(_children_cpu() - cpu, 1)}
    marker.write_text(json.dumps(record | {"status": "done", "seconds": STAGE_SECONDS[name]}, indent=1))
    return True


def _base_models_stage(py: str, names: list[str], force: bool = False) -> None:
    for name in names:
        out = layout.base_model(name)
        run_stage(
            f"base model {name}",
            out / layout.STAGE_MARKER,
            [],
            [name],
            [[py, "-m", STAGE_CODE["base-models"], name]],
            output=out,
            code="base-models",
            force=force,
        )


def _tiny_models_stage(py: str, force: bool = False) -> None:
    out = layout.tiny_models()
    run_stage(
        "tiny-models",
        out / layout.STAGE_MARKER,
        [],
        ["tiny", "300"],
        [[py, "-m", STAGE_CODE["tiny-models"], "--out", str(out)]],
        output=out,
        code="tiny-models",
        force=force,
    )


def _training_stages(profile: Profile, selected: list[str], accelerate: list[str], config: str, forced) -> None:
    tiny = [str(layout.tiny_model("llama")), str(layout.tiny_model("mixtral"))] if profile.tiny_models else []
    tiny += [str(layout.base_model(name)) for name in profile.base_models]
    for task in layout.TASKS:
        if task in selected:
            out, recipe = layout.trained_model(task), profile.training_recipe(task)
            run_stage(
                task,
                out / layout.STAGE_MARKER,
                [recipe, profile.corpus, *tiny],
                [config],
                [accelerate + ["-m", STAGE_CODE["training"], recipe]],
                output=out,
                code="training",
                force=forced(task),
            )


def _eval_stages(profile: Profile, force: bool = False) -> None:
    for task in layout.TASKS:
        recipe, model = profile.eval_recipe(task), str(layout.trained_model(task))
        marker = layout.EVAL / f".{task}-{profile.name}.stage.json"
        run_stage(
            f"eval {task}",
            marker,
            [recipe, model, profile.corpus],
            [],
            [[sys.executable, "-m", STAGE_CODE["eval"], recipe]],
            output=layout.eval_dir(task, profile.name),
            code="eval",
            force=force,
        )


def _gpu_setting() -> str:
    """Whether torch sees a CUDA GPU, a setting of the quantize stage: a recipe may build GPTQ only on one
    (`gptq_only_on_cuda`), so a rerun on a GPU machine builds what a CPU run left out."""
    import torch  # lazy: only the quantize stage asks

    return f"cuda={torch.cuda.is_available()}"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _report_times_and_headline(profile: Profile, total: float) -> None:
    """Print the stage timings and, once both tasks are evaluated, the model-vs-base headline (also written)."""
    lines = [
        f"  {name:<24} "
        + ("up to date" if t is None else f"{t['wall']:8.1f} s wall {t['cpu']:8.1f} s CPU")
        + (" FAILED" if t and t.get("failed") else "")
        for name, t in STAGE_SECONDS.items()
    ]
    print(
        f"[secml pipeline] stage times ({os.cpu_count()} CPUs, load average now {_load()}):\n"
        + "\n".join(lines)
        + f"\n  {'total':<24} {total:8.1f} s wall"
    )
    summary_dir = layout.eval_summary_dir(profile.name)
    if len(load_reports(summary_dir)) < len(layout.TASKS):
        return
    timings = {
        "stage_seconds": dict(STAGE_SECONDS),
        "total_seconds": round(total, 1),
        "load_average": _load(),
        "cpu_count": os.cpu_count(),
    }
    table, _ = write_headline(summary_dir, f"{profile.name}: trained vs untrained base on held-out hosts", timings)
    print(
        f"[secml pipeline] did the models learn the task? trained vs untrained base, held-out hosts "
        f"({summary_dir}/summary.md, summary.png):\n{table}"
    )


def _push_stage(py: str, namespace: str | None) -> None:
    if hub_token() and namespace:
        _run([py, "-m", "secml_recipes.deploy.push", "--namespace", namespace])
    else:
        print("[secml pipeline] push: skipped (needs a Hub token, e.g. HF_TOKEN, and --namespace)")


def _forced_stages(parser: argparse.ArgumentParser, values: list[str] | None) -> set[str]:
    """The stage names --force gave ('all' alone: the chain's stages, not the model preparations)."""
    names = {n.strip() for v in values or [] for n in v.split(",") if n.strip()}
    unknown = sorted(names - set(FORCEABLE) - {"all"})
    if unknown:
        parser.error(f"--force: unknown stage {unknown}; one of {FORCEABLE}")
    return (names - {"all"}) | (set(STAGES) if "all" in names else set())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="secml pipeline",
        description=__doc__,
        formatter_class=CommandHelpFormatter,
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--accelerate-config", help="overrides the profile's accelerate config")
    parser.add_argument("--namespace", help="Hub user/organisation for the push stage")
    for stage in STAGES:
        parser.add_argument(f"--{stage}-only", action="store_true", help=f"run only the {stage} stage")
    parser.add_argument(
        "--force",
        nargs="?",
        const="all",
        action="append",
        metavar="STAGE",
        help="rerun a stage even when it is up to date, its old output moved aside (never deleted); alone: every "
        f"stage of {STAGES[:-1]}; repeatable or comma-separated; {FORCEABLE[-2:]} only when named",
    )
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    only = [s for s in STAGES if getattr(args, f"{s}_only")]
    selected = only or STAGES
    forced = _forced_stages(parser, args.force)
    py = sys.executable
    STAGE_SECONDS.clear()
    started = time.perf_counter()
    accelerate = [
        py,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        args.accelerate_config or profile.accelerate_config,
    ]

    try:
        if profile.tiny_models and any(s in selected for s in ("specialist", "generalist", "eval")):
            _tiny_models_stage(py, "tiny-models" in forced)
        if profile.base_models and any(s in selected for s in ("specialist", "generalist", "eval")):
            _base_models_stage(py, profile.base_models, "base-models" in forced)
        if "data" in selected:
            run_stage(
                "data",
                Path(profile.corpus + ".stage.json"),
                [],
                profile.build_args,
                [[py, "-m", STAGE_CODE["data"], "build", "--out", profile.corpus, *profile.build_args]],
                output=Path(profile.corpus),
                code="data",
                force="data" in forced,
            )
        _training_stages(profile, selected, accelerate, args.accelerate_config or "", forced.__contains__)
        if "specialist" in selected and "generalist" in selected and profile.tiny_models:
            _run([py, "-m", "tests.harness.smoke_check", *(str(layout.trained_model(t)) for t in layout.TASKS)])
        if "eval" in selected:
            _eval_stages(profile, "eval" in forced)
        if "quantize" in selected:
            run_stage(
                "quantize",
                layout.quant_stage_marker(profile.name),
                [profile.quantize, *(str(layout.trained_model(t)) for t in layout.TASKS), profile.corpus],
                [_gpu_setting()],
                [[py, "-m", STAGE_CODE["quantize"], profile.quantize]],
                output=quantize_outputs(profile.quantize),
                code="quantize",
                force="quantize" in forced,
            )
        if "push" in selected:
            _push_stage(py, args.namespace)
    except subprocess.CalledProcessError as err:
        # What finished is still reported: a deployable failing its check after training and evaluation
        # leaves the stage times and the model-vs-base headline worth reading.
        _report_times_and_headline(profile, time.perf_counter() - started)
        print(
            f"[secml pipeline] stage failed: {' '.join(err.cmd)} (exit {err.returncode}); fix it and rerun: "
            "finished stages are skipped",
            file=sys.stderr,
        )
        return err.returncode or 1
    _report_times_and_headline(profile, time.perf_counter() - started)
    print("[secml pipeline] done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
