"""The whole chain in one command: data -> specialist -> generalist -> evaluation -> quantize -> push.

Usage:
    python -m secml_recipes.pipeline                         # full profile: production recipes
    python -m secml_recipes.pipeline --profile smoke         # tiny local models, CPU (what `make smoke` runs)
    python -m secml_recipes.pipeline --specialist-only --accelerate-config accelerate_configs/tpu.yaml

Each stage records a fingerprint of its inputs (the package's code, recipe text, overrides, upstream
outputs) in its output
folder once it succeeds. A stage whose fingerprint matches is skipped, so a rerun after a crash continues
where it stopped (an interrupted training resumes from its last checkpoint). Push runs only when a
token is in HF_TOKEN/HUGGINGFACE_TOKEN and --namespace is given.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import layout

CODE = Path(__file__).resolve().parent  # the package: its code is an input of every stage


@dataclass
class Profile:
    """One way to run the chain: its recipes, corpus size and accelerate config. Paths come from `layout`."""

    name: str
    build_args: list[str]
    accelerate_config: str
    tiny_models: bool
    recipes: str  # folder of the training recipes; evaluation recipes live in recipes/eval/<same>

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
    "smoke": Profile(
        "smoke",
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


def fingerprint_path(path: Path) -> str:
    """Content hash of a file, or of a folder's small files plus every file's name and size."""
    h = hashlib.sha256()
    if path.is_file():
        h.update(path.read_bytes())
    elif path.is_dir():
        for p in sorted(path.rglob("*")):
            skip = ".secml_stage.json" in p.name or "checkpoint-" in str(p) or "__pycache__" in p.parts
            if p.is_file() and not skip:
                h.update(f"{p.relative_to(path)}:{p.stat().st_size}".encode())
                if p.stat().st_size < 1_000_000:
                    h.update(p.read_bytes())
    return h.hexdigest()


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
        return False
    if clear is not None and state and state.get("fingerprint") != fp:
        shutil.rmtree(clear, ignore_errors=True)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"stage": name, "fingerprint": fp, "status": "running"}))
    for cmd in cmd_list:
        _run(cmd)
    marker.write_text(json.dumps({"stage": name, "fingerprint": fp, "status": "done"}))
    return True


def _tiny_models_stage(py: str) -> None:
    out = layout.tiny_models()
    run_stage(
        "tiny-models",
        out / layout.STAGE_MARKER,
        [CODE / "tiny.py", CODE / "data"],
        ["tiny", "300"],
        [[py, "-m", "secml_recipes.tiny", "--out", str(out)]],
    )


def _training_stages(profile: Profile, selected: list[str], accelerate: list[str], config: str) -> None:
    tiny = [str(layout.tiny_model("llama")), str(layout.tiny_model("mixtral"))] if profile.tiny_models else []
    for task in layout.TASKS:
        if task in selected:
            out, recipe = layout.trained_model(task), profile.training_recipe(task)
            run_stage(
                task,
                out / layout.STAGE_MARKER,
                [CODE, recipe, profile.corpus, *tiny],
                [config],
                [accelerate + ["-m", "secml_recipes.sft", recipe]],
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
            [[sys.executable, "-m", "secml_recipes.evaluate", recipe]],
        )


def _push_stage(py: str, namespace: str | None) -> None:
    from .hub import hub_token

    if hub_token() and namespace:
        _run([py, "-m", "secml_recipes.push", "--namespace", namespace])
    else:
        print("[secml pipeline] push: skipped (needs a Hub token, e.g. HF_TOKEN, and --namespace)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m secml_recipes.pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        if "data" in selected:
            run_stage(
                "data",
                Path(profile.corpus + ".stage.json"),
                [CODE / "data"],
                profile.build_args,
                [[py, "-m", "secml_recipes.data", "build", "--out", profile.corpus, *profile.build_args]],
            )
        _training_stages(profile, selected, accelerate, args.accelerate_config or "")
        if "specialist" in selected and "generalist" in selected and profile.tiny_models:
            _run([py, "-m", "secml_recipes.smoke_check", *(str(layout.trained_model(t)) for t in layout.TASKS)])
        if "eval" in selected:
            _eval_stages(profile)
        if "quantize" in selected:
            run_stage(
                "quantize",
                layout.quant_stage_marker(profile.name),
                [CODE, profile.quantize, *(str(layout.trained_model(t)) for t in layout.TASKS), profile.corpus],
                [],
                [[py, "-m", "secml_recipes.quantize", profile.quantize]],
            )
        if "push" in selected:
            _push_stage(py, args.namespace)
    except subprocess.CalledProcessError as err:
        print(
            f"[secml pipeline] stage failed: {' '.join(err.cmd)} (exit {err.returncode}); fix it and rerun: "
            "finished stages are skipped",
            file=sys.stderr,
        )
        return err.returncode or 1
    print("[secml pipeline] done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
