"""Constrained-decoding libraries on our constraints: compile time and per-token cost (docs/using-models.md).

    python bench/constrained_decoding.py --tokenizer models/base/smollm2-135m-instruct
    PYTHONPATH=/path/to/xgrammar python bench/constrained_decoding.py ...   # xgrammar from a separate install
    python bench/constrained_decoding.py --validity models/base/smollm2-135m-instruct --parts 6

For each library: the time to build its view of the tokenizer (once per model), the time to compile the
decode-time schema of each of `--parts` report parts (once per request), and the time per token to compute the
mask and advance the matcher while the teacher's own answer to the part is fed token by token (what a generation
step adds). A library that is not installed is reported as such. The answers must be accepted by every library:
the row says how many were.

With `--validity MODEL` it instead runs MODEL (a folder, converted to a cached f16 GGUF, or a .gguf) in llama.cpp on
`--parts` parts of the real fixture report, free and constrained, and prints the schema-valid rate, the rate
sys-scan-agent's EnrichedOutput accepts, tokens and seconds of each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from transformers import AutoTokenizer

from secml_recipes.scan.generate import generate_report, plan_hosts
from secml_recipes.tasks.constraints import enriched_schema_for_part, report_constraint
from secml_recipes.tasks.prompts import compact
from secml_recipes.tasks.split import split_report


def sample_parts(n: int, max_prompt_chars: int) -> list[tuple[dict, dict]]:
    """`n` report parts with findings (and their reference answers) from generated hosts."""
    out = []
    for plan in plan_hosts(4 * n, 21):
        for part, ref in split_report(generate_report(plan), max_prompt_chars):
            if ref["enriched_findings"]:
                out.append((part, ref))
                break
        if len(out) == n:
            break
    return out


def bench_llguidance(tokenizer, parts) -> dict:
    import llguidance  # noqa: F401  (lazy: optional)

    from secml_recipes.use.constrained import _ll_tokenizer, matcher

    eos = [tokenizer.convert_tokens_to_ids(tokenizer.eos_token)]
    t0 = time.perf_counter()
    _ll_tokenizer(tokenizer, tuple(eos))
    setup = time.perf_counter() - t0
    compiles, per_token, accepted = [], [], 0
    for part, ref in parts:
        ids = tokenizer(compact(ref), add_special_tokens=False)["input_ids"]
        t0 = time.perf_counter()
        m = matcher(tokenizer, report_constraint(part), eos)
        compiles.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ok = True
        for token in ids:
            m.compute_bitmask()
            ok = ok and m.consume_token(token)
        per_token.append((time.perf_counter() - t0) / len(ids))
        accepted += ok and m.is_accepting()
    return {"setup": setup, "compiles": compiles, "per_token": per_token, "accepted": accepted}


def bench_xgrammar(tokenizer, parts) -> dict:
    import xgrammar as xgr  # lazy: optional, measured only

    t0 = time.perf_counter()
    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=len(tokenizer))
    compiler = xgr.GrammarCompiler(info, cache_enabled=False)
    setup = time.perf_counter() - t0
    compiles, per_token, accepted = [], [], 0
    bitmask = xgr.allocate_token_bitmask(1, len(tokenizer))
    for part, ref in parts:
        ids = tokenizer(compact(ref), add_special_tokens=False)["input_ids"]
        t0 = time.perf_counter()
        compiled = compiler.compile_json_schema(
            json.dumps(enriched_schema_for_part(part)), any_whitespace=False, separators=(",", ":")
        )
        m = xgr.GrammarMatcher(compiled)
        compiles.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ok = True
        for token in ids:
            m.fill_next_token_bitmask(bitmask)
            ok = ok and m.accept_token(token)
        per_token.append((time.perf_counter() - t0) / len(ids))
        accepted += ok
    return {"setup": setup, "compiles": compiles, "per_token": per_token, "accepted": accepted}


def validity(model: str, n_parts: int, max_prompt_chars: int, max_new_tokens: int) -> None:
    """Free vs constrained decoding of the real fixture's parts in llama.cpp (module docstring)."""
    from secml_recipes.scan.fixtures import real_reports
    from secml_recipes.tasks.prompts import specialist_messages
    from secml_recipes.use.generation import LlamaCppGenerator
    from secml_recipes.use.gguf_cache import as_gguf
    from secml_recipes.use.triage import parse_enriched

    try:  # lazy: optional (make agent)
        from sys_scan_agent.models import EnrichedOutput
    except ImportError:
        EnrichedOutput = None
    gguf, tokenizer = as_gguf(model)
    generator = LlamaCppGenerator(gguf, tokenizer, n_ctx=8192)
    report = next(r for r in real_reports() if r["meta"].get("tool_version") == "5.0.0")
    parts = [p for p, _ in split_report(report, max_prompt_chars)][:n_parts]
    print(f"{len(parts)} parts of the real 5.0.0 fixture at {max_prompt_chars} characters, {gguf}, llama.cpp\n")
    print("| decoding | schema-valid | EnrichedOutput accepts | new tokens (mean) | seconds per part |")
    print("|---|---|---|---|---|")
    for label, rules in (("free", [None] * len(parts)), ("constrained", [report_constraint(p) for p in parts])):
        valid = agent_ok = 0
        generator.stats.update(generated_tokens=0, seconds=0.0, prompts=0)
        for part, rule in zip(parts, rules):
            (text,) = generator.generate([generator.render(specialist_messages(part))], max_new_tokens, constraint=rule)
            enriched, _ = parse_enriched(text)
            valid += enriched is not None
            if enriched is not None and EnrichedOutput is not None:
                try:
                    EnrichedOutput.model_validate(enriched)
                    agent_ok += 1
                except ValueError:
                    pass
        n, stats = len(parts), generator.stats
        print(
            f"| {label} | {valid}/{n} | {agent_ok}/{n} | {stats['generated_tokens'] / n:.0f} | "
            f"{stats['seconds'] / n:.1f} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", help="a model folder with its tokenizer")
    parser.add_argument("--validity", metavar="MODEL", help="free vs constrained validity of MODEL in llama.cpp")
    parser.add_argument("--max-new-tokens", type=int, default=2048)
    parser.add_argument("--parts", type=int, default=5)
    parser.add_argument("--max-prompt-chars", type=int, default=6000)
    args = parser.parse_args(argv)
    if args.validity:
        validity(args.validity, args.parts, args.max_prompt_chars, args.max_new_tokens)
        return
    if not args.tokenizer:
        parser.error("--tokenizer is required (or --validity MODEL)")
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    parts = sample_parts(args.parts, args.max_prompt_chars)
    print(f"{len(parts)} parts, {len(tokenizer)} tokens in the vocabulary ({args.tokenizer})\n")
    print(
        "| library | tokenizer setup s | compile s (median, max) | mask + advance µs/token (median) "
        "| answers accepted |"
    )
    print("|---|---|---|---|---|")
    for name, run in (("llguidance", bench_llguidance), ("xgrammar", bench_xgrammar)):
        try:
            r = run(tokenizer, parts)
        except ImportError as err:
            print(f"| {name} | not installed ({err}) | | | |")
            continue
        print(
            f"| {name} | {r['setup']:.2f} | {statistics.median(r['compiles']):.3f}, {max(r['compiles']):.3f} | "
            f"{statistics.median(r['per_token']) * 1e6:.0f} | {r['accepted']}/{len(parts)} |"
        )


if __name__ == "__main__":
    main()
