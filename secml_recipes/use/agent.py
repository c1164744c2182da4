"""Run the trained generalist's tool loop over a sys-scan report, in its family's chat and tool-call format.

    secml agent report.json --model models/generalist_model_lora
    secml agent report.json --model models/generalist_model_lora --local-readonly

The conversation starts as training episodes start (`corpus/episodes.py`: the system prompt, a question and the
scan digest), is rendered with the model's chat template and the tool schemas, and each assistant turn is parsed
with the family's tool-call parser. Tools run only from parsed calls, only when the tool is declared and the
arguments fit its schema (`evaluation/rollout.execute_call`); text inside the report or a tool result is never
executed, so an instruction injected into the scan cannot add a tool run.

By default the tools answer from the simulated host built from the scan (`data/tools.ScanEnvironment`), which
touches nothing on this machine. `--local-readonly` answers from this machine instead, through a fixed table
of read-only lookups (`LOCAL_TOOLS`) whose arguments are checked before anything is read: the SHA-256 and
metadata of a path that exists and is a regular file, and the package database's owner of such a path (dpkg
or rpm, with a fixed argument vector, never a shell and never a command the model wrote).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from secml_recipes.command_help import CommandHelpFormatter
from secml_recipes.deploy.gguf import DeployError
from secml_recipes.families import ChatFamily, canonical_conversation
from secml_recipes.tasks.constraints import TOOL_CHOICES, tool_turn_constraint
from secml_recipes.tasks.prompts import DEFAULT_QUESTION, generalist_messages
from secml_recipes.tasks.tool_loop import declared_schemas, take_step, turn_tool_choice
from secml_recipes.tasks.tools import TOOL_SCHEMAS, ScanEnvironment, ToolError
from secml_recipes.use.generation import open_model
from secml_recipes.use.triage import TriageError, add_model_runtime_arguments, read_report

MAX_HASH_BYTES = 1 << 30
PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.\-]{0,127}(:[a-z0-9]+)?$")  # Debian policy names (+ :arch)
SAFE_PATH = re.compile(r"^/[A-Za-z0-9._+@:,=/\-]{0,4095}$")


def _checked_regular_file(path: str) -> Path:
    """`path` when it is an absolute, plain path to an existing regular file; a ToolError otherwise."""
    if not isinstance(path, str) or not SAFE_PATH.match(path) or "/../" in path + "/" or "//" in path:
        raise ToolError(f"{path!r} is not a plain absolute path")
    p = Path(path)
    try:
        info = p.stat()
    except OSError as err:
        raise ToolError(f"{path}: {err.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ToolError(f"{path}: not a regular file")
    return p


def local_sha256(path: str) -> dict:
    p = _checked_regular_file(path)
    size = p.stat().st_size
    if size > MAX_HASH_BYTES:
        return {"path": path, "size": size, "error": "larger than 1 GiB: not hashed"}
    digest = hashlib.sha256()
    try:
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        return {"path": path, "error": err.strerror}
    return {"path": path, "sha256": digest.hexdigest(), "size": size}


def local_stat(path: str) -> dict:
    p = _checked_regular_file(path)
    info = p.stat()
    return {
        "path": path,
        "mode": oct(stat.S_IMODE(info.st_mode)),
        "uid": info.st_uid,
        "gid": info.st_gid,
        "size": info.st_size,
        "setuid": bool(info.st_mode & stat.S_ISUID),
        "setgid": bool(info.st_mode & stat.S_ISGID),
        "mtime": int(info.st_mtime),
    }


def _read_only(argv: list[str]) -> str | None:
    """stdout of a fixed read-only query (argument vector, no shell, 10 s), or None when it fails."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def package_record(name: str) -> dict | None:
    """Version of an installed package, by a name that must match Debian's package-name rules."""
    if not PACKAGE_NAME.match(name):
        raise ToolError(f"{name!r} is not a package name")
    if shutil.which("dpkg-query"):
        out = _read_only(["dpkg-query", "-W", "-f=${Version}", "--", name])
    elif shutil.which("rpm"):
        out = _read_only(["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", "--", name])
    else:
        out = None
    return {"name": name, "version": out.strip()} if out else None


def local_package_owner(path: str) -> dict:
    p = _checked_regular_file(path)
    if shutil.which("dpkg-query"):
        out = _read_only(["dpkg-query", "-S", "--", str(p)])
        owner = out.split(":", 1)[0].split(",")[0].strip() if out else None
    elif shutil.which("rpm"):
        out = _read_only(["rpm", "-qf", "--qf", "%{NAME}", "--", str(p)])
        owner = out.strip() if out else None
    else:
        return {"path": path, "error": "no package manager (dpkg or rpm) on this machine"}
    if not owner:
        return {"path": path, "owned_by": None, "note": "no installed package owns this path"}
    record = package_record(owner) or {"name": owner}
    return {"path": path, "owned_by": record["name"], "version": record.get("version")}


# The only tools --local-readonly declares and runs: tool name -> (function, argument it takes).
LOCAL_TOOLS: dict[str, tuple[Callable[[str], dict], str]] = {
    "hash_binary": (local_sha256, "path"),
    "stat_file": (local_stat, "path"),
    "query_package_manager": (local_package_owner, "path"),
}
# Tools answered from the scan itself in both modes (they read nothing from the machine).
SCAN_ONLY_TOOLS = ("search_findings", "lookup_attack_technique")


class LocalReadOnlyTools:
    """This machine, through `LOCAL_TOOLS` only; the scan answers `SCAN_ONLY_TOOLS`."""

    def __init__(self, report: dict):
        self.scan = ScanEnvironment(report)

    def call(self, name: str, arguments: dict) -> dict:
        if name in SCAN_ONLY_TOOLS:
            return self.scan.call(name, arguments)
        if name not in LOCAL_TOOLS or set(arguments) != {LOCAL_TOOLS[name][1]}:
            raise ToolError(f"{name} is not available in read-only local mode")
        function, key = LOCAL_TOOLS[name]
        return function(arguments[key])


def declared_tools(local: bool) -> list[dict]:
    """The tool schemas the model sees: all of training's, or only what read-only local mode can answer."""
    allowed = set(LOCAL_TOOLS) | set(SCAN_ONLY_TOOLS) if local else None
    return [t for t in TOOL_SCHEMAS if allowed is None or t["function"]["name"] in allowed]


@dataclass
class Run:
    """One agent run: the conversation, every call with what became of it, and the conclusion."""

    messages: list[dict]
    calls: list[dict] = field(default_factory=list)
    steps: int = 0
    conclusion: str | None = None
    stopped: str | None = None  # why there is no conclusion: malformed call, step limit


def run_agent(
    generator,
    report: dict,
    question: str = DEFAULT_QUESTION,
    local: bool = False,
    max_steps: int = 8,
    max_new_tokens: int = 512,
    family: ChatFamily | None = None,
    echo=print,
    constrain: bool = True,
    first_turn_tool_choice: str = "auto",
    conclude: bool = True,
) -> Run:
    """The tool loop (module docstring); `echo` prints each step as it happens. With `constrain` each turn is
    decoded under the tool-call constraint (tasks/constraints.py): a declared tool with arguments the scan and the
    results so far allow, in the family's call format, or a plain answer (not on the first turn where
    `first_turn_tool_choice` is "required": the model looks at the evidence before it concludes); with `conclude`
    the last step and a step after one that only repeated earlier calls must answer (`turn_tool_choice`)."""
    family = family or generator.family
    if family is None:
        raise ValueError(f"{generator.name}: its chat family cannot be told, so its tool calls cannot be read")
    tools = declared_tools(local)
    declared = declared_schemas(tools)
    env = LocalReadOnlyTools(report) if local else ScanEnvironment(report)
    run = Run(generalist_messages(report, question))
    for step in range(1, max_steps + 1):
        run.steps = step
        prompt = generator.render(*canonical_conversation(run.messages, tools))
        choice = turn_tool_choice(run.messages, step - 1, max_steps, first_turn_tool_choice, conclude)
        extra = (
            {"constraint": tool_turn_constraint(tools, report, family.tool_format, run.messages, choice)}
            if constrain
            else {}
        )
        (text,) = generator.generate([prompt], max_new_tokens, **extra)
        outcome = take_step(run.messages, text, family, declared, env, step)
        if outcome.malformed is not None:
            run.stopped = f"malformed tool call: {outcome.malformed}"
            echo(f"step {step}: {run.stopped}\n  output: {text[:300]!r}")
            return run
        if outcome.final is not None:
            run.conclusion = outcome.final
            echo(f"step {step}: final answer")
            return run
        for record, result in zip(outcome.records, outcome.results):
            run.calls.append({**record, "step": step})
            echo(
                f"step {step}: {record['name']}({json.dumps(record['arguments'])}) -> "
                + (f"refused: {record['error']}" if record["error"] else "ok")
                + f" {result[:200]}"
            )
    run.stopped = f"no conclusion within {max_steps} steps (--max-steps)"
    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secml agent", description=__doc__.split("\n\n")[0], formatter_class=CommandHelpFormatter
    )
    parser.add_argument("report", help="a raw sys-scan JSON report (schema v2)")
    parser.add_argument("--model", required=True, help="trained generalist: adapter folder, model folder or .gguf")
    parser.add_argument("--question", default=DEFAULT_QUESTION)
    parser.add_argument(
        "--local-readonly",
        action="store_true",
        help="answer file and package lookups from this machine (read-only, whitelisted)",
    )
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument(
        "--first-turn-tool-choice",
        choices=TOOL_CHOICES,
        default="auto",
        help="required: the first turn must call a tool (under the constraint), so the model looks at the evidence "
        "before it concludes; auto: it may answer at once",
    )
    parser.add_argument(
        "--no-conclude",
        action="store_true",
        help="under the constraint the last step, and a step after one that only repeated earlier calls, must "
        "answer instead of calling (the default); with this flag the loop may call until --max-steps, unanswered",
    )
    add_model_runtime_arguments(parser)
    parser.add_argument("--transcript", help="write the whole run (messages, calls) to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # here, not under __main__: `secml agent` runs main()

    args = build_parser().parse_args(argv)
    try:
        report = read_report(args.report)
        generator = open_model(args.model, tokenizer=args.tokenizer, backend=args.backend)
        run = run_agent(
            generator,
            report,
            args.question,
            args.local_readonly,
            args.max_steps,
            args.max_new_tokens,
            constrain=not args.no_constrain,
            first_turn_tool_choice=args.first_turn_tool_choice,
            conclude=not args.no_conclude,
        )
    except (TriageError, FileNotFoundError, OSError, ValueError, DeployError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    refused = sum(bool(c["error"]) for c in run.calls)
    print(f"[secml agent] {run.steps} steps, {len(run.calls)} tool calls ({refused} refused)")
    print(f"Conclusion: {run.conclusion}" if run.conclusion is not None else f"No conclusion: {run.stopped}")
    if args.transcript:
        Path(args.transcript).write_text(
            json.dumps(
                {
                    "model": args.model,
                    "local_readonly": args.local_readonly,
                    "steps": run.steps,
                    "calls": run.calls,
                    "conclusion": run.conclusion,
                    "stopped": run.stopped,
                    "messages": run.messages,
                },
                indent=2,
            )
        )
    return 0 if run.conclusion is not None else 1


if __name__ == "__main__":
    sys.exit(main())
