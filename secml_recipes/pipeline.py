"""The whole chain in one command: data -> specialist -> generalist -> evaluation -> quantize -> push.

Usage:
    secml pipeline                            # full profile: production recipes
    secml pipeline --profile smoke            # SmolLM2-135M-Instruct on CPU (what `make smoke` runs)
    secml pipeline --profile tiny             # the tiny stand-in models: every path, in minutes
    secml pipeline --specialist-only --accelerate-config accelerate_configs/tpu.yaml

Each stage records a fingerprint of its inputs (the package's code, recipe text, overrides, upstream
outputs) in its output
folder once it succeeds. A stage whose fingerprint matches is skipped, so a rerun after a crash continues
where it stopped (an interrupted training resumes from its last checkpoint). Push runs only when a
token is in HF_TOKEN/HUGGINGFACE_TOKEN and --namespace is given.

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

from secml_recipes import layout
from secml_recipes.command_help import CommandHelpFormatter
from secml_recipes.fingerprint import fingerprint_path

CODE = Path(__file__).resolve().parent  # the package: its code is an input of every stage


SMOKE_DATA_ARGS = ["--specialist", "160", "--generalist", "96", "--seed", "7", "--max-prompt-chars", "2500"]


@dataclass
class Profile:
    """One way to run the chain: its recipes, corpus size and accelerate config. Paths come from `layout`."""

    name: str
    build_args: list[str]
    accelerate_config: str
    tiny_models: bool
    recipes: str  # folder of the training recipes; evaluation recipes live in recipes/eval/<same>
    base_models: list[str] = field(default_factory=list)  # registry-shipped models to prepare (base_models.py)

    @property
    def corpus(self) -> str:
        return str(layout.corpus(self.name))

    def training_recipe(self, task: str) -> str:
        return f"{self.recipes}/{task}.yaml"

    def eval_recipe(self, task: str) -> str:
        return self.training_recipe(task).replace("recipes/", "recipes/eval/", 1)

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
        "recipes/smoke/smollm2",
        base_models=["smollm2"],
    ),
    # The tiny random stand-ins: every stage and code path in a few minutes, numbers meaningless (tests, CI).
    "tiny": Profile(
        "tiny",
        ["--specialist", "48", "--generalist", "48", "--seed", "7", "--max-prompt-chars", "6000"],
        "accelerate_configs/cpu.yaml",
        True,
        "recipes/smoke",
    ),
    "full": Profile(
        "full",
        ["--specialist", "5000", "--generalist", "5000", "--seed", "1234"],
        "accelerate_configs/single_gpu.yaml",
        False,
        "recipes",
    ),
}
STAGES = ["data", "specialist", "generalist", "eval", "quantize", "push"]
# Each stage this invocation ran: wall seconds and CPU seconds of its commands (None: skipped as up to date). CPU
# seconds say what a stage costs on a machine shared with other work, where wall time says little.
STAGE_SECONDS: dict[str, dict | None] = {}


def stage_fingerprint(inputs: list[str | Path], extra: list[str]) -> str:
    h = hashlib.sha256()
    for item in inputs:
        h.update(f"{item}={fingerprint_path(Path(item))}".encode())
    h.update(json.dumps(extra).encode())
    return h.hexdigest()


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
    subprocess.run(cmd, check=True)


def run_stage(
    name: str, marker: Path, inputs: list, extra: list[str], cmd_list: list[list[str]], clear: Path | None = None
) -> bool:
    """Run the commands unless the marker says they finished on these inputs. Returns whether it ran.

    The marker is written as 'running' before the commands and 'done' after: a rerun with the same inputs
    after a crash runs the stage again in the same folder (training resumes from its checkpoint); a rerun
    with changed inputs clears `clear` first, so nothing trained on other inputs is resumed."""
    fp = stage_fingerprint(inputs, extra)
    state = _marker(marker)
    if state.get("fingerprint") == fp and state.get("status") == "done":
        print(f"[secml pipeline] {name}: up to date, skipped")
        STAGE_SECONDS.setdefault(name, None)
        return False
    if clear is not None and state and state.get("fingerprint") != fp:
        shutil.rmtree(clear, ignore_errors=True)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"stage": name, "fingerprint": fp, "status": "running"}))
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
    marker.write_text(json.dumps({"stage": name, "fingerprint": fp, "status": "done", "seconds": STAGE_SECONDS[name]}))
    return True


def _base_models_stage(py: str, names: list[str]) -> None:
    for name in names:
        out = layout.base_model(name)
        run_stage(
            f"base model {name}",
            out / layout.STAGE_MARKER,
            [CODE / "base_models.py"],
            [name],
            [[py, "-m", "secml_recipes.train.base_models", name]],
        )


def _tiny_models_stage(py: str) -> None:
    out = layout.tiny_models()
    run_stage(
        "tiny-models",
        out / layout.STAGE_MARKER,
        [CODE / "tiny.py", CODE / "data"],
        ["tiny", "300"],
        [[py, "-m", "tests.harness.tiny", "--out", str(out)]],
    )


def _training_stages(profile: Profile, selected: list[str], accelerate: list[str], config: str) -> None:
    tiny = [str(layout.tiny_model("llama")), str(layout.tiny_model("mixtral"))] if profile.tiny_models else []
    tiny += [str(layout.base_model(name)) for name in profile.base_models]
    for task in layout.TASKS:
        if task in selected:
            out, recipe = layout.trained_model(task), profile.training_recipe(task)
            run_stage(
                task,
                out / layout.STAGE_MARKER,
                [CODE, recipe, profile.corpus, *tiny],
                [config],
                [accelerate + ["-m", "secml_recipes.train.sft", recipe]],
                clear=out,
            )


def _eval_stages(profile: Profile) -> None:
    for task in layout.TASKS:
        recipe, model = profile.eval_recipe(task), str(layout.trained_model(task))
        marker = layout.EVAL / f".{task}-{profile.name}.stage.json"
        run_stage(
            f"eval {task}",
            marker,
            [CODE, recipe, model, profile.corpus],
            [],
            [[sys.executable, "-m", "secml_recipes.evaluation.evaluate", recipe]],
        )


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _report_times_and_headline(profile: Profile, total: float) -> None:
    """Print the stage timings and, once both tasks are evaluated, the model-vs-base headline (also written)."""
    from secml_recipes.evaluation.headline import load_reports, write_headline

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
    from secml_recipes.hub import hub_token

    if hub_token() and namespace:
        _run([py, "-m", "secml_recipes.deploy.push", "--namespace", namespace])
    else:
        print("[secml pipeline] push: skipped (needs a Hub token, e.g. HF_TOKEN, and --namespace)")


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
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    only = [s for s in STAGES if getattr(args, f"{s}_only")]
    selected = only or STAGES
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
            _tiny_models_stage(py)
        if profile.base_models and any(s in selected for s in ("specialist", "generalist", "eval")):
            _base_models_stage(py, profile.base_models)
        if "data" in selected:
            run_stage(
                "data",
                Path(profile.corpus + ".stage.json"),
                [CODE / "data"],
                profile.build_args,
                [[py, "-m", "secml_recipes.corpus", "build", "--out", profile.corpus, *profile.build_args]],
            )
        _training_stages(profile, selected, accelerate, args.accelerate_config or "")
        if "specialist" in selected and "generalist" in selected and profile.tiny_models:
            _run([py, "-m", "tests.harness.smoke_check", *(str(layout.trained_model(t)) for t in layout.TASKS)])
        if "eval" in selected:
            _eval_stages(profile)
        if "quantize" in selected:
            run_stage(
                "quantize",
                layout.quant_stage_marker(profile.name),
                [CODE, profile.quantize, *(str(layout.trained_model(t)) for t in layout.TASKS), profile.corpus],
                [],
                [[py, "-m", "secml_recipes.deploy.quantize", profile.quantize]],
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
