"""The four ways to use a trained model, on the real small model `make smoke` trains (SmolLM2-135M-Instruct): triage,
the agent loop, sys-scan-agent's `analyze` with our provider, and the HTTP server.

They run where `make smoke` has left its models in models/ (and llama.cpp is built) and skip elsewhere: CI trains no
real model. Each checks the command's contract on real model output, whatever its quality, and prints what the
model did (parts valid, tool calls, answers): those numbers are results to read, not thresholds.
"""

import importlib.util
import json

import pytest

from helpers import ROOT, post_json, served
from secml_recipes import layout
from secml_recipes.scan.fixtures import real_report_paths
from secml_recipes.tasks.split import split_report
from secml_recipes.use import agent, analyze, triage

SPECIALIST = ROOT / layout.trained_model("specialist")
GENERALIST = ROOT / layout.trained_model("generalist")
GENERALIST_GGUF = ROOT / layout.gguf_file("generalist", "q8_0")


def _trained_on_smollm2(folder) -> bool:
    try:
        recipe = json.loads((folder / layout.RECIPE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return str(layout.base_model("smollm2")) in str(recipe.get("resolved", {}).get("model_name_or_path"))


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (_trained_on_smollm2(SPECIALIST) and _trained_on_smollm2(GENERALIST)),
        reason="no SmolLM2 models trained here (make smoke)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None, reason="llama.cpp not built here (make llama-cpp)"
    ),
]


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    """The shipped real sys-scan 5.0.0 report cut to its MAC and IOC scanners and three collection warnings:
    four parts at the smoke corpus' part size, three of them listing a finding (a whole report is ~90 parts, about
    half an hour for a 135M model on 2 cores)."""
    report = json.loads(real_report_paths()[0].read_text())
    report["results"] = [r for r in report["results"] if r["scanner"] in ("mac", "ioc")]
    report["collection_warnings"] = report["collection_warnings"][:3]
    path = tmp_path_factory.mktemp("report") / "host.json"
    path.write_text(json.dumps(report))
    return path


def test_triage_runs_the_trained_specialist_and_reports_every_part(small_report, tmp_path, capsys):
    out = tmp_path / "host.enriched.json"
    size, why = triage.trained_part_size(SPECIALIST)
    assert "trained on" in why, "make smoke's specialist records its corpus' part size"
    rc = triage.main(
        [str(small_report), "--model", str(SPECIALIST), "--backend", "llama_cpp", "--out", str(out), "--no-html"]
        + ["--max-new-tokens", "1536"]
    )
    printed = capsys.readouterr().out
    parts = [json.loads(line) for line in out.with_name("host.enriched.parts.jsonl").read_text().splitlines()]
    assert len(parts) == len(split_report(json.loads(small_report.read_text()), size))
    assert all(p["status"] in ("valid", "invalid") and p["output"] for p in parts), "every part ran and is kept"
    valid = sum(p["status"] == "valid" for p in parts)
    assert rc == (0 if valid == len(parts) else 1)
    assert f"[secml triage] {len(parts)} parts: {valid} valid" in printed
    if valid:
        from secml_recipes.tasks.validate import enriched_report_error

        written = json.loads(out.read_text())
        assert enriched_report_error(written) is None
        assert written["enrichment_results"]["secml_triage"]["model"] == str(SPECIALIST)
    else:
        assert not out.exists()
    with capsys.disabled():
        print(f"\nSmolLM2 specialist triage: {valid}/{len(parts)} parts valid; reasons: {[p['reason'] for p in parts]}")


def test_the_agent_loop_runs_the_trained_generalist_with_the_simulated_tools_only(tmp_path, capsys):
    transcript = tmp_path / "run.json"
    rc = agent.main(
        [str(real_report_paths()[0]), "--model", str(GENERALIST), "--backend", "llama_cpp", "--max-steps", "3"]
        + ["--max-new-tokens", "256", "--transcript", str(transcript)]
    )
    printed = capsys.readouterr().out
    run = json.loads(transcript.read_text())
    assert rc == (0 if run["conclusion"] is not None else 1) and 1 <= run["steps"] <= 3
    assert f"[secml agent] {run['steps']} steps, {len(run['calls'])} tool calls" in printed
    simulated = {t["function"]["name"] for t in agent.declared_tools(local=False)}
    for call in run["calls"]:  # what ran is a declared simulated tool, or a refusal with its reason
        assert call["error"] or call["name"] in simulated
    with capsys.disabled():
        print(
            f"\nSmolLM2 generalist: {run['steps']} steps, {len(run['calls'])} calls "
            f"({sum(bool(c['error']) for c in run['calls'])} refused), conclusion: {run['conclusion'] is not None}"
        )


def test_sys_scan_agent_analyze_runs_with_the_trained_specialist_as_its_provider(small_report, tmp_path, capsys):
    pytest.importorskip("sys_scan_agent", reason="sys-scan-agent is not installed (make agent)")
    from sys_scan_agent.models import EnrichedOutput

    out = tmp_path / "enriched_report.json"
    rc = analyze.main(
        [str(small_report), "--model", str(SPECIALIST), "--backend", "llama_cpp", "--out", str(out), "--no-html"]
        + ["--max-new-tokens", "1536"]
    )
    assert rc == 0
    written = json.loads(out.read_text())
    EnrichedOutput.model_validate(written)
    calls = written["enrichment_results"]["llm_provider"]
    assert calls and all(c["model_name"] == str(SPECIALIST) for c in calls), "every answer names our model"
    assert all(c["tokens_prompt"] > 0 for c in calls), "the model really ran"
    fallbacks = [c for c in calls if c["fallback"]]
    assert all(c["error_message"] for c in fallbacks), "a fallback to the agent's heuristic says why"
    capsys.readouterr()  # the command's own output, checked above through what it wrote
    with capsys.disabled():
        print(f"\nsys-scan-agent with the SmolLM2 specialist: {len(calls)} calls, {len(fallbacks)} fell back")


@pytest.fixture(scope="module")
def server():
    if not GENERALIST_GGUF.exists():
        pytest.skip(f"{GENERALIST_GGUF} not there (make smoke writes it in its deploy stage)")
    if importlib.util.find_spec("uvicorn") is None:
        pytest.skip("llama-cpp-python's server is not installed (make llama-cpp)")
    with served(GENERALIST_GGUF) as base:
        yield base


def test_the_served_generalist_answers_chat_and_tool_requests(server):
    question = [{"role": "user", "content": "Which SUID binaries on this host are not stock?"}]
    reply = post_json(server + "/v1/chat/completions", {"messages": question, "max_tokens": 64})
    assert reply["choices"][0]["message"]["role"] == "assistant" and reply["usage"]["completion_tokens"] > 0
    tools = agent.declared_tools(local=False)
    reply = post_json(server + "/v1/chat/completions", {"messages": question, "tools": tools, "max_tokens": 256})
    choice = reply["choices"][0]
    assert choice["finish_reason"] in ("stop", "tool_calls", "length")
    calls = choice["message"].get("tool_calls") or []
    for call in calls:  # whatever the model wrote, a call the server returns is well formed
        assert call["type"] == "function" and isinstance(json.loads(call["function"]["arguments"]), dict)
    print(f"\nserved SmolLM2 generalist: {len(calls)} tool calls, finish_reason {choice['finish_reason']}")
