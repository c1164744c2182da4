"""`secml COMMAND [ARGS ...]`: every stage of the project behind one command (`python -m secml_recipes` is the same).

Each command is the `main(argv)` of a module that also runs on its own (`python -m secml_recipes.corpus` is
`secml data`); multi-device training stays `accelerate launch -m secml_recipes.sft RECIPE.yaml`, since accelerate
launches a module.
"""

from __future__ import annotations

import difflib
import importlib
import sys

from secml_recipes import __version__

# command -> (module whose main(argv) runs it, one line for `secml --help`). The module is imported only when its
# command runs: `secml --help` and a mistyped command answer at once, without importing torch or transformers.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": (
        "secml_recipes.corpus.__main__",
        "the corpus: generate, enrich, build, ingest real scans, fidelity, validate",
    ),
    "plan": ("secml_recipes.train.plan.__main__", "per-device memory of a recipe under a launch; which launches fit"),
    "train": ("secml_recipes.train.sft", "fine-tune the specialist or the generalist from a recipe (one process)"),
    "eval": ("secml_recipes.evaluation.evaluate", "score a trained model against the reference and its baselines"),
    "quantize": ("secml_recipes.deploy.quantize", "merge, quantize (GGUF, GPTQ) and verify the trained models"),
    "push": ("secml_recipes.deploy.push", "publish adapters, models and quantized artifacts to the Hugging Face Hub"),
    "triage": ("secml_recipes.use.triage", "enrich a sys-scan report with a trained specialist"),
    "agent": ("secml_recipes.use.agent", "investigate a sys-scan report with the generalist's tool loop"),
    "serve": ("secml_recipes.use.serve", "serve a GGUF over an OpenAI-compatible HTTP API"),
    "analyze": ("secml_recipes.use.analyze", "sys-scan-agent's analyze with a trained specialist as its model"),
    "pipeline": ("secml_recipes.pipeline", "the whole chain: data, train, eval, quantize, push (--profile)"),
    "teacher-check": ("secml_recipes.evaluation.teacher_check", "the teacher's enrichments measured (Markdown tables)"),
}

MULTI_DEVICE = "accelerate launch --config_file accelerate_configs/<cfg>.yaml -m secml_recipes.sft RECIPE.yaml"


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: secml COMMAND [ARGS ...]",
        "",
        "Train security-analysis language models on sys-scan output, from the corpus to a served model.",
        "",
        "commands:",
        *(f"  {name.ljust(width)}  {description}" for name, (_, description) in COMMANDS.items()),
        "",
        "secml COMMAND --help lists a command's arguments and keys with their defaults.",
        "Several devices (the same as secml train, under accelerate):",
        f"  {MULTI_DEVICE}",
    ]
    return "\n".join(lines) + "\n"


def _unknown(name: str) -> str:
    what = "option" if name.startswith("-") else "command"
    close = difflib.get_close_matches(name, COMMANDS, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else f"the commands are {', '.join(COMMANDS)}"
    return f"secml: unknown {what} '{name}'; {hint} (secml --help lists them)"


def _exit_code(stop: SystemExit) -> int:
    """A command's sys.exit (argparse's --help and usage errors) as main's return value."""
    if stop.code is None or isinstance(stop.code, int):
        return stop.code or 0
    print(stop.code, file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run `secml COMMAND ARGS...`; the command's own exit status is returned."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(usage(), end="", file=sys.stderr)
        return 2
    name, rest = argv[0], argv[1:]
    if name in ("-h", "--help", "help"):
        print(usage(), end="")
        return 0
    if name == "--version":
        print(f"secml {__version__}")
        return 0
    if name not in COMMANDS:
        print(_unknown(name), file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return module.main(rest) or 0
    except SystemExit as stop:
        return _exit_code(stop)


if __name__ == "__main__":
    sys.exit(main())
