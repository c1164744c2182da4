"""Triage a sys-scan report with a trained specialist: raw report in, sys-scan-agent's enriched report out.

    secml triage report.json --model models/specialist_model
    secml triage report.json --model models/specialist-gguf/specialist-q8_0.gguf

The report is cut into parts exactly as training cut it (`tasks/split.py`, same `--max-prompt-chars` as the
corpus, which the smoke and full profiles set as large as the model's context holds with its answer), each part is
rendered with the model's chat template and generated greedily at full answer length. The parts run one after
another on one llama.cpp context: every part's prompt starts with the same system prompt, host and host context
(`prompts.report_text`, `split.host_context`), and llama.cpp reuses the KV cache of the prefix a prompt shares
with the previous one, so only each part's own findings are read anew. Every output is parsed
and validated against the enriched format, and the valid parts are merged back (`merge_parts`). A part whose
output is not a valid enriched report is reported as invalid with the reason and kept out of the merge; the
reference teacher fills it only under `--fill-from-teacher`, and then every finding it contributed carries the
tag `secml:teacher-filled`. What happened to each part is recorded in the output's `enrichment_results.secml_triage`
and every raw model output is kept in `<out>.parts.jsonl`. With sys-scan-agent installed (`make agent`) the
result is also checked by the agent's own `EnrichedOutput` model and rendered to HTML by its `report_html`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from secml_recipes import layout
from secml_recipes.command_help import CommandHelpFormatter
from secml_recipes.corpus.tarball import corpus_record
from secml_recipes.deploy.gguf import DeployError
from secml_recipes.tasks.constraints import report_constraint
from secml_recipes.tasks.parsing import parse_json_output
from secml_recipes.tasks.prompts import specialist_messages
from secml_recipes.tasks.split import merge_parts, split_prompts, split_report
from secml_recipes.tasks.validate import enriched_report_error, raw_report_error
from secml_recipes.use.generation import open_model, resolved_backend

TEACHER_TAG = "secml:teacher-filled"
DEFAULT_MAX_PROMPT_CHARS = 12000  # the corpus builder's default (corpus/tarball.py); use the corpus' own value


class TriageError(ValueError):
    """A bad input (report, model path): the message names the file and what would be right."""


@dataclass
class PartResult:
    """One part of the report: what the model wrote and what became of it (valid, invalid, teacher)."""

    part: str
    status: str
    reason: str | None
    findings_in_prompt: int
    seconds: float
    output: str

    def summary(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "output"}


def read_report(path: str | Path) -> dict:
    """The raw sys-scan report at `path`, or a TriageError that names the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise TriageError(f"report not found: {path} (a sys-scan JSON report, e.g. `sys-scan --canonical > r.json`)")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TriageError(f"{path}: not JSON ({err})") from None
    problem = raw_report_error(report)
    if problem:
        raise TriageError(f"{path}: not a sys-scan v2 report: {problem}")
    return report


def trained_part_size(model: str | Path, tokenizer: str | Path | None = None) -> tuple[int, str]:
    """(part size in characters, where it came from) for a trained model: the corpus part size recorded with it
    at training (`secml_recipe.json`), else its corpus' manifest when the corpus is still there, else the
    corpus builder's default. A report split at another size than training used gives the model prompts it
    never saw."""
    folders = [Path(p) if Path(p).is_dir() else Path(p).parent for p in (model, tokenizer) if p]
    recipe = None
    for folder in folders:  # the model's folder, else (a GGUF) the source folder given as its tokenizer
        try:
            recipe = json.loads((folder / layout.RECIPE_FILE).read_text())
            break
        except (OSError, ValueError):
            continue
    if recipe is None:
        return DEFAULT_MAX_PROMPT_CHARS, "the corpus builder's default (no training record beside the model)"
    record = recipe.get("corpus") or corpus_record(recipe.get("resolved", {}).get("dataset_path") or "") or {}
    if record.get("max_prompt_chars"):
        return int(record["max_prompt_chars"]), f"the part size of the corpus {folder} was trained on"
    return DEFAULT_MAX_PROMPT_CHARS, "the corpus builder's default (the training record names no part size)"


def parse_enriched(text: str) -> tuple[dict | None, str | None]:
    """(enriched report, None) when `text` is a valid enriched report, else (None, why not)."""
    value = parse_json_output(text)
    if value is None:
        return None, "not a JSON object" if text.strip() else "empty output"
    problem = enriched_report_error(value)
    return (None, f"not a valid enriched report: {problem}") if problem else (value, None)


def _mark_teacher(enriched: dict) -> dict:
    findings = [dict(f, tags=sorted({*f.get("tags", []), TEACHER_TAG})) for f in enriched.get("enriched_findings", [])]
    return {**enriched, "enriched_findings": findings}


def triage(
    report: dict,
    generator,
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
    max_new_tokens: int = 4096,
    fill_from_teacher: bool = False,
    progress: bool = True,
    constrain: bool = True,
) -> tuple[dict | None, list[PartResult]]:
    """(merged enriched report or None when no part is usable, one PartResult per part) for `report`. With
    `constrain` each part is decoded under its enriched-report constraint (tasks/constraints.py). `generator` may be
    a list of generators (copies of one model, e.g. llama.cpp on a share of the cores each): the parts are then
    decoded that many at a time, each by whichever copy is free, and come back in order."""
    pairs = split_prompts(report, max_prompt_chars)  # from the report alone: no teacher at inference
    generators = list(generator) if isinstance(generator, (list, tuple)) else [generator]
    free: queue.SimpleQueue = queue.SimpleQueue()
    for gen in generators:
        free.put(gen)

    def answer(part: dict) -> tuple[str, float]:
        gen = free.get()
        try:
            prompt = gen.render(specialist_messages(part))
            t0 = time.perf_counter()
            extra = {"constraint": report_constraint(part)} if constrain else {}
            (text,) = gen.generate([prompt], max_new_tokens, **extra)
            return text, round(time.perf_counter() - t0, 2)
        finally:
            free.put(gen)

    bar = tqdm(total=len(pairs), desc="triage", unit="part", disable=not progress or None)
    with ThreadPoolExecutor(len(generators)) as pool:
        futures = [pool.submit(answer, part) for part, _keys in pairs]
        for future in as_completed(futures):
            future.result()
            bar.update(1)
    bar.close()
    references = None  # the teacher's parts, built only under fill_from_teacher
    results, model_parts, teacher_parts = [], [], []
    for n, ((part, _keys), future) in enumerate(zip(pairs, futures), 1):
        text, seconds = future.result()
        enriched, reason = parse_enriched(text)
        status = "valid" if enriched is not None else "invalid"
        if enriched is not None:
            model_parts.append(enriched)
        elif fill_from_teacher:
            status = "teacher"
            references = references or split_report(report, max_prompt_chars)  # the same parts, with the teacher's
            teacher_parts.append(_mark_teacher(references[n - 1][1]))
        found = sum(len(r.get("findings", [])) for r in part.get("results", []))
        results.append(PartResult(f"{n}/{len(pairs)}", status, reason, found, seconds, text))
    parts = model_parts + teacher_parts  # host-level fields come from the model where any part of it is valid
    return (merge_parts(parts) if parts else None), results


def _write_html(enriched: dict, path: Path) -> str | None:
    """Render with sys-scan-agent's report_html after its EnrichedOutput model accepts the report; None when the
    agent is not installed, else the path written. A rejection by the agent is a TriageError."""
    try:
        # lazy: optional (make agent)
        from sys_scan_agent.models import EnrichedOutput
        from sys_scan_agent.report_html import write_html
    except ImportError:
        return None
    try:
        model = EnrichedOutput.model_validate(enriched)
    except ValueError as err:
        raise TriageError(f"sys-scan-agent rejects the merged report: {str(err).splitlines()[0]}") from None
    write_html(model, path)
    return str(path)


def run(args) -> int:
    report_path = Path(args.report)
    report = read_report(report_path)
    out = Path(args.out or report_path.with_name(report_path.stem + ".enriched.json"))
    if args.max_prompt_chars is None:
        args.max_prompt_chars, why = trained_part_size(args.model, args.tokenizer)
        print(f"[secml triage] parts of up to {args.max_prompt_chars} characters: {why}")
    generators = open_models(args)
    t0 = time.perf_counter()
    enriched, parts = triage(
        report,
        generators,
        args.max_prompt_chars,
        args.max_new_tokens,
        args.fill_from_teacher,
        constrain=not args.no_constrain,
    )
    seconds = round(time.perf_counter() - t0, 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    parts_file = out.with_name(out.name.removesuffix(".json") + ".parts.jsonl")
    parts_file.write_text("".join(json.dumps(asdict(p)) + "\n" for p in parts), encoding="utf-8")
    for p in parts:
        print(f"part {p.part}: {p.status}" + (f" ({p.reason})" if p.reason else "") + f" [{p.seconds}s]")
    counts = {s: sum(p.status == s for p in parts) for s in ("valid", "invalid", "teacher")}
    print(
        f"[secml triage] {len(parts)} parts: {counts['valid']} valid, {counts['invalid']} invalid, "
        f"{counts['teacher']} filled from the teacher; {seconds}s; raw outputs in {parts_file}"
    )
    if enriched is None:
        print(
            f"error: the model wrote no valid part, so there is no enriched report (see {parts_file}; "
            "--fill-from-teacher fills invalid parts from the reference teacher, marked)",
            file=sys.stderr,
        )
        return 1
    enriched["raw_reference"] = hashlib.sha256(report_path.read_bytes()).hexdigest()
    enriched["enrichment_results"] = {
        "secml_triage": {
            "model": str(args.model),
            "constrained": not args.no_constrain,
            "complete": counts["invalid"] == 0,
            "teacher_tag": TEACHER_TAG,
            "max_prompt_chars": args.max_prompt_chars,
            "parallel": len(generators),
            "seconds": seconds,
            "parts": [p.summary() for p in parts],
        }
    }
    problem = enriched_report_error(enriched)
    if problem:  # each part was valid; a merge that is not would be a bug here, not the model's
        raise RuntimeError(f"merged report invalid: {problem}")
    out.write_text(json.dumps(enriched, indent=2), encoding="utf-8")
    html = None if args.no_html else _write_html(enriched, out.with_suffix(".html"))
    print(f"[secml triage] wrote {out}" + (f" and {html}" if html else ""))
    return 0 if counts["invalid"] == 0 else 1


def open_models(args) -> list:
    """`args.parallel` copies of the model, the cores shared out between them (llama.cpp only: one transformers model
    already uses every core)."""
    if args.parallel < 1:
        raise TriageError(f"--parallel {args.parallel}: give 1 or more")
    if args.parallel == 1:
        return [open_model(args.model, tokenizer=args.tokenizer, backend=args.backend, dtype=args.dtype)]
    if resolved_backend(args.model, args.backend) != "llama_cpp":
        raise TriageError(
            f"--parallel {args.parallel} runs copies of a llama.cpp model: give a .gguf (or --backend llama_cpp)"
        )
    threads = max(1, (os.cpu_count() or 1) // args.parallel)
    return [
        open_model(args.model, tokenizer=args.tokenizer, backend=args.backend, dtype=args.dtype, n_threads=threads)
        for _ in range(args.parallel)
    ]


def add_model_runtime_arguments(parser) -> None:
    """`--tokenizer`, `--backend` and `--no-constrain`, as every command that runs a trained model (triage, agent,
    analyze) takes them."""
    parser.add_argument("--tokenizer", help="GGUF only: the source model folder (default: the GGUF's own tokenizer)")
    parser.add_argument(
        "--backend",
        choices=["auto", "transformers", "llama_cpp"],
        default="auto",
        help="runtime (auto: llama.cpp for a GGUF when `make llama-cpp` built it; llama_cpp also runs a model or "
        "adapter folder through a cached f16 GGUF, faster on CPUs)",
    )
    parser.add_argument(
        "--no-constrain",
        action="store_true",
        help="decode freely: without the output constraint (the enriched-report schema of each part, or the declared "
        "tools in the model family's call format) that keeps a model to valid output (tasks/constraints.py)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secml triage", description=__doc__.split("\n\n")[0], formatter_class=CommandHelpFormatter
    )
    parser.add_argument("report", help="a raw sys-scan JSON report (schema v2)")
    parser.add_argument("--model", required=True, help="trained specialist: model folder, adapter folder or .gguf")
    parser.add_argument("--out", help="enriched report to write (default: REPORT.enriched.json beside the report)")
    parser.add_argument(
        "--fill-from-teacher",
        action="store_true",
        help=f"fill parts the model got wrong from the reference teacher (tagged {TEACHER_TAG})",
    )
    parser.add_argument(
        "--max-prompt-chars",
        type=int,
        default=None,
        help="part size (default: the max_prompt_chars of the corpus the model was trained on, from its folder)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=4096)
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="llama.cpp: decode this many parts at once, each on its share of the cores (one copy of the model each); "
        "on 2 cores two single-thread copies finish ~1.5x sooner than one on both",
    )
    add_model_runtime_arguments(parser)
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--no-html", action="store_true", help="do not render the HTML report")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (TriageError, FileNotFoundError, OSError, DeployError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
