"""Our enriched format is sys-scan-agent's: every teacher output parses with its own pydantic models, its
risk formula gives our scores, and its HTML report, report diff and rule-gap miner read our files.
(sys-scan-agent 7.0.0 comes from `make agent`, which `make test` runs.)"""

import json

import pytest

agent_models = pytest.importorskip(
    "sys_scan_agent.models", reason="sys-scan-agent 7.0.0 is not installed: run `make agent`"
)
from sys_scan_agent import report_diff, report_html, risk, rule_gap_miner

from secml_recipes.scan.fixtures import real_reports
from secml_recipes.scan.generate import generate_report, plan_hosts
from secml_recipes.tasks.split import split_report
from secml_recipes.teacher.enrich import enrich_report


@pytest.fixture(scope="module")
def outputs():
    """The teacher's output for the real fixture, its parts, and 30 generated hosts with their parts."""
    reports = list(real_reports()) + [generate_report(plan) for plan in plan_hosts(30, 17)]
    out = []
    for report in reports:
        out.append(enrich_report(report))
        out += [completion for _, completion in split_report(report, 12000)]
    return out


def test_installed_version_is_the_pinned_one():
    from importlib.metadata import version

    assert version("sys-scan-agent") == "7.0.0"


def test_every_teacher_output_parses_with_sys_scan_agents_models(outputs):
    for output in outputs:
        parsed = agent_models.EnrichedOutput.model_validate(output)
        assert len(parsed.enriched_findings) == len(output["enriched_findings"])
        assert [a.priority for a in parsed.actions] == sorted((a.priority for a in parsed.actions), reverse=True)
        agent_models.Reductions(**parsed.reductions)  # the shape its CLI rebuilds reductions with


def test_sys_scan_agents_risk_formula_gives_our_scores(outputs):
    for output in outputs:
        for f in output["enriched_findings"]:
            assert risk.compute_risk(f["risk_subscores"], dict(risk.DEFAULT_WEIGHTS))[0] == f["risk_score"]


def test_html_report_renders_from_our_output(tmp_path):
    output = agent_models.EnrichedOutput.model_validate(enrich_report(next(real_reports())))
    path = report_html.write_html(output, tmp_path / "enriched_report.html")
    html = path.read_text()
    assert "/usr/bin/mullvad-exclude" in html and "risk medium" in html
    assert "third-party" in html  # our rationale lines are rendered per finding


def test_report_diff_and_rule_gap_mining_read_our_files(outputs, tmp_path):
    prev, curr = (agent_models.EnrichedOutput.model_validate(o) for o in outputs[:2])
    assert report_diff.build_diff(prev, curr).startswith("# Enriched Report Diff")
    paths = []
    for i, output in enumerate(outputs[:10]):
        paths.append(tmp_path / f"enriched-{i}.json")
        paths[-1].write_text(json.dumps(output))
    mined = rule_gap_miner.mine_gap_candidates(paths, risk_threshold=40, min_support=1)
    assert mined["total_candidates"] >= 1
