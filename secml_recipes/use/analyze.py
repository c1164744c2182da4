"""Run sys-scan-agent's `analyze` pipeline with a trained specialist as its LLM provider, offline.

    secml analyze report.json --model models/specialist_model --out enriched_report.json

sys-scan-agent 7.0.0's `sys-scan-graph analyze` runs its scaffold workflow (enrich, correlate, risk,
compliance, metrics: `cli.run_intelligence_workflow`) and only its LangGraph app, which needs the `ai` extra,
reaches the LLM provider. This command runs the same workflow with `SecmlProvider` injected through
`set_llm_provider`, then the agent's own summarize node (`graph.summarization.enhanced_summarize_host_state`,
the node the LangGraph app runs), so the summaries come from the provider; the result is checked by the agent's
`EnrichedOutput`, put in the agent's canonical order and written with its HTML rendering. The metadata of every
provider call (which model answered, tokens, latency, fallback and why) is kept in
`enrichment_results.llm_provider`. Needs `make agent` (sys-scan-agent, pydantic, PyNaCl).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import sys
from pathlib import Path

from secml_recipes.command_help import CommandHelpFormatter
from secml_recipes.deploy.gguf import DeployError
from secml_recipes.use.agent_provider import SecmlProvider
from secml_recipes.use.triage import TriageError, add_model_runtime_arguments, read_report


def analyze(report_path: str | Path, provider, out: str | Path, html: bool = True) -> dict:
    """The agent's analyze with `provider` injected; writes `out` (+ .html) and returns the written dict."""
    # lazy: optional (make agent)
    from sys_scan_agent import canonicalize, cli, llm_provider, models, report_html
    from sys_scan_agent.graph.summarization import enhanced_summarize_host_state

    previous = llm_provider._PROVIDER  # restored after; get_llm_provider() would load a provider from the environment
    llm_provider.set_llm_provider(provider)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the agent prints its own progress with rich markup
            enriched, state = cli.run_intelligence_workflow(Path(report_path))
            state = asyncio.run(enhanced_summarize_host_state(state))
    finally:
        llm_provider.set_llm_provider(previous)
    output = enriched.model_dump()
    output["summaries"] = models.Summaries(**state["summary"]).model_dump()
    output["enrichment_results"] = {
        **(output.get("enrichment_results") or {}),
        "llm_provider": [m._asdict() for m in provider.calls],
    }
    validated = models.EnrichedOutput.model_validate(output)
    written = canonicalize.canonicalize_enriched_output_dict(validated.model_dump())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(written, indent=2), encoding="utf-8")
    if html:
        report_html.write_html(validated, out.with_suffix(".html"))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="secml analyze", description=__doc__.split("\n\n")[0], formatter_class=CommandHelpFormatter
    )
    parser.add_argument("report", help="a raw sys-scan JSON report (schema v2)")
    parser.add_argument("--model", required=True, help="trained specialist: model folder, adapter folder or .gguf")
    parser.add_argument("--out", default="enriched_report.json")
    parser.add_argument(
        "--max-prompt-chars",
        type=int,
        default=None,
        help="part size (default: that of the corpus the model was trained on)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=4096)
    parser.add_argument("--no-html", action="store_true")
    add_model_runtime_arguments(parser)
    args = parser.parse_args(argv)
    try:
        import sys_scan_agent.cli  # noqa: F401

    except ImportError as err:
        print(f"error: sys-scan-agent is not usable here ({err}); run `make agent`", file=sys.stderr)
        return 2
    try:
        report = read_report(args.report)
        provider = SecmlProvider(
            args.model,
            report,
            args.max_prompt_chars,
            args.max_new_tokens,
            constrain=not args.no_constrain,
            tokenizer=args.tokenizer,
            backend=args.backend,
        )
        provider.load()  # a bad model path fails here, before the agent runs
        written = analyze(args.report, provider, args.out, html=not args.no_html)
    except (TriageError, FileNotFoundError, OSError, DeployError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    calls = written["enrichment_results"]["llm_provider"]
    for call in calls:
        print(
            f"provider call: model {call['model_name']}, {call['tokens_prompt']} prompt + {call['tokens_completion']} "
            f"completion tokens, {call['latency_ms']} ms"
            + (f", fallback: {call['error_message']}" if call["fallback"] else "")
        )
    print(f"[secml analyze] wrote {args.out}" + ("" if args.no_html else f" and {Path(args.out).with_suffix('.html')}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
