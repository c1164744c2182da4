"""Our specialist as sys-scan-agent's LLM provider, inside the agent's own analyze pipeline, offline."""

import json

import pytest

pytest.importorskip("sys_scan_agent.cli", reason="sys-scan-agent with its CLI module is not installed (make agent)")

from sys_scan_agent.llm_provider import NullLLMProvider, ProviderMetadata, get_llm_provider
from sys_scan_agent.models import EnrichedOutput
from test_triage import ScriptedSpecialist

from helpers import ROOT
from secml_recipes.scan.fixtures import real_report_paths
from secml_recipes.tasks.split import compact
from secml_recipes.teacher.enrich import build_enrichment
from secml_recipes.use import analyze as analyze_cli
from secml_recipes.use.agent_provider import PROVIDER_NAME, SecmlProvider

REPORT = real_report_paths()[0]


@pytest.fixture(scope="module")
def report():
    return json.loads(REPORT.read_text())


def test_the_agents_analyze_takes_its_summaries_from_our_model(report, tmp_path):
    model = ScriptedSpecialist(report, lambda i, teacher: compact(teacher), 12000)
    provider = SecmlProvider("models/specialist_model", report, 12000, generator=model)
    assert all(callable(getattr(provider, name)) for name in ("summarize", "triage", "refine_rules"))
    written = analyze_cli.analyze(REPORT, provider, tmp_path / "enriched_report.json")
    EnrichedOutput.model_validate(written)
    assert written == json.loads((tmp_path / "enriched_report.json").read_text())
    assert "<html" in (tmp_path / "enriched_report.html").read_text().lower()
    ours = build_enrichment(report).output["summaries"]
    assert written["summaries"]["executive_summary"] == ours["executive_summary"]
    assert (
        written["summaries"]["triage_summary"]["top_findings"][0]["id"]
        == build_enrichment(report).output["enriched_findings"][0]["id"]
    )
    (call,) = written["enrichment_results"]["llm_provider"]
    assert call["model_name"] == "models/specialist_model" and call["provider_name"] == PROVIDER_NAME
    assert call["fallback"] is False and call["error_message"] is None
    assert not isinstance(get_llm_provider(), SecmlProvider), "the agent's provider is restored afterwards"


def test_every_answer_names_the_model_and_says_when_it_fell_back(report):
    def half_wrong(i, teacher):
        return compact(teacher) if i % 2 else "no"

    provider = SecmlProvider("m.gguf", generator=ScriptedSpecialist(report, half_wrong, 12000))
    summaries, meta = provider.summarize({"top_findings": []}, [], [])
    assert isinstance(meta, ProviderMetadata) and meta.fallback and "no report attached" in meta.error_message
    provider.attach_report(report)
    result, meta = provider.triage({"top_findings": []}, [])
    assert meta.model_name == "m.gguf" and not meta.fallback and "parts invalid, left out" in meta.error_message
    assert result["top_findings"] and set(result["top_findings"][0]) == {"id", "title", "severity", "risk_score"}
    refined, meta = provider.refine_rules([{"id": "r1", "conditions": []}], {"r1": ["suspicious module loaded"]})
    assert refined[0]["id"] == "r1" and meta.fallback and "heuristic" in meta.error_message
    assert [c.model_name for c in provider.calls] == ["m.gguf"] * 3
    nothing = SecmlProvider("m", report, generator=ScriptedSpecialist(report, lambda i, t: "{}", 12000))
    summaries, meta = nothing.summarize({"top_findings": []}, [], [])
    expected, _ = NullLLMProvider().summarize({"top_findings": []}, [], [])
    assert meta.fallback and "no valid part" in meta.error_message
    assert summaries.executive_summary == expected.executive_summary


def test_command_errors_are_one_line(tmp_path, capsys):
    assert analyze_cli.main([str(tmp_path / "none.json"), "--model", str(tmp_path)]) == 2
    assert "report not found" in capsys.readouterr().err
    assert analyze_cli.main([str(REPORT), "--model", str(tmp_path / "none"), "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert "model not found" in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def smoke_specialist(tiny_models, small_corpus, tmp_path_factory):
    """The smoke specialist recipe trained briefly on the tiny Llama (as `make smoke` trains it, fewer steps)."""
    from secml_recipes.train.sft import main

    out = tmp_path_factory.mktemp("smoke") / "specialist_model"
    rc = main(
        [
            str(ROOT / "recipes" / "tiny" / "specialist.yaml"),
            "--model_name_or_path",
            str(tiny_models["llama"]),
            "--dataset_path",
            str(small_corpus),
            "--output_dir",
            str(out),
            "--max_train_samples",
            "4",
            "--per_device_train_batch_size",
            "1",
            "--gradient_accumulation_steps",
            "1",
            "--max_steps",
            "2",
            "--save_strategy",
            "no",
        ]
    )
    assert rc == 0
    return out


@pytest.mark.slow
def test_analyze_command_with_a_smoke_trained_specialist(smoke_specialist, tmp_path, capsys):
    out = tmp_path / "enriched_report.json"
    assert (
        analyze_cli.main(
            [
                str(REPORT),
                "--model",
                str(smoke_specialist),
                "--out",
                str(out),
                "--max-new-tokens",
                "4",
                "--max-prompt-chars",
                "12000",
            ]
        )
        == 0
    )
    written = json.loads(out.read_text())
    EnrichedOutput.model_validate(written)
    calls = written["enrichment_results"]["llm_provider"]
    assert calls and all(c["model_name"] == str(smoke_specialist) for c in calls)
    assert all(c["tokens_prompt"] > 0 for c in calls), "the model really ran on every part"
    # A 2-step model writes no valid enriched report: the agent's heuristic answered, and the metadata says so.
    assert all(c["fallback"] and "no valid part" in c["error_message"] for c in calls)
    assert f"model {smoke_specialist}" in capsys.readouterr().out
