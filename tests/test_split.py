"""Split parts keep the host: every part carries the whole host's verdict and every correlation that
touches it, fits its prompt budget, and the parts merge back into the whole."""

import json
import os

import pytest

from secml_recipes.scan.fixtures import real_reports
from secml_recipes.scan.generate import generate_report, plan_hosts
from secml_recipes.tasks.prompts import specialist_messages
from secml_recipes.tasks.split import COVERAGE_MARKERS, compact, merge_parts, specialist_examples, split_report
from secml_recipes.tasks.validate import specialist_row_error
from secml_recipes.teacher.enrich import SEVERITY_ORDER, build_enrichment

MAX_CHARS = 12000


@pytest.fixture(scope="module")
def hosts():
    reports = list(real_reports()) + [generate_report(plan) for plan in plan_hosts(60, 9)]
    return [(report, build_enrichment(report), split_report(report, MAX_CHARS)) for report in reports]


def test_no_correlation_is_lost_and_no_part_contradicts_its_host(hosts):
    correlations = lost = contradicting = 0
    for _report, enrichment, parts in hosts:
        whole = enrichment.output
        correlations += len(whole["correlations"])
        kept = {c["id"] for _, completion in parts for c in completion["correlations"]}
        lost += len({c["id"] for c in whole["correlations"]} - kept)
        contradicting += sum(completion["summaries"] != whole["summaries"] for _, completion in parts)
    assert correlations > 20 and lost == 0 and contradicting == 0


def test_every_correlation_touching_a_part_is_in_it(hosts):
    for _report, enrichment, parts in hosts:
        for part, completion in parts:
            own = {f["id"] for r in part["results"] for f in r["findings"]}
            expected = [c for c in enrichment.output["correlations"] if own & set(c["related_finding_ids"])]
            assert completion["correlations"] == expected


def test_the_context_is_the_hosts_top_findings_by_the_scanners_own_severity_the_same_in_every_part(hosts):
    """No teacher in the context: coverage markers first, then every finding above info, most severe first, each
    carried or counted as left out; one context per host, so the parts share their prompt prefix."""
    checked = 0
    for report, _enrichment, parts in hosts:
        if len(parts) == 1:
            continue
        everything = [(r["scanner"], f) for r in report["results"] for f in r["findings"]]
        ranked = {(s, f["id"]) for s, f in everything if f["severity"] != "info" or f["id"] in COVERAGE_MARKERS}
        context = parts[0][0]["meta"]["secml_context"]
        assert all(part["meta"]["secml_context"] == context for part, _ in parts)
        carried = [e for e in context["top_findings"] if e["id"] not in COVERAGE_MARKERS]
        ranks = [SEVERITY_ORDER.index(e["severity"]) if e["severity"] in SEVERITY_ORDER else -1 for e in carried]
        assert ranks == sorted(ranks, reverse=True)
        assert len(context["top_findings"]) + context["top_findings_omitted"] == len(ranked)
        assert sum(context["severity_counts"].values()) == len(everything)
        prompts = [specialist_messages(part) for part, _ in parts]
        shared = os.path.commonprefix([p[1]["content"] for p in prompts])
        assert compact(context) in shared  # host and context come before anything a part has of its own
        checked += 1
    assert checked > 3


def test_parts_merge_back_into_the_whole_enrichment(hosts):
    for _report, enrichment, parts in hosts:
        assert merge_parts([completion for _, completion in parts]) == enrichment.output


def test_parts_fit_their_budgets_and_cover_every_finding(hosts):
    for report, _enrichment, parts in hosts:
        assert all(len(compact(p)) <= MAX_CHARS for p, _ in parts)
        whole_ids = sorted(f["id"] for r in report["results"] for f in r["findings"])
        part_ids = sorted(f["id"] for p, _ in parts for r in p["results"] for f in r["findings"])
        assert part_ids == whole_ids
        warnings = sum(len(p["collection_warnings"]) for p, _ in parts)
        assert warnings == len(report["collection_warnings"])


def test_the_real_fixture_splits_into_parts_that_all_say_medium():
    report = next(real_reports())
    parts = split_report(report, MAX_CHARS)
    assert len(parts) > 2
    assert {c["summaries"]["analyst"]["risk_level"] for _, c in parts} == {"medium"}
    for part, _ in parts:
        context = part["meta"]["secml_context"]
        assert context["scanner_finding_counts"]["modules"] == 204
        assert context["warning_counts"] == {"proc_unreadable_cmdline": 152}
    modules_part = next(
        p for p, c in parts if any(r["scanner"] == "modules" for r in p["results"]) and not c["enriched_findings"]
    )
    top = {e["id"] for e in modules_part["meta"]["secml_context"]["top_findings"]}
    assert "/usr/bin/mullvad-exclude" in top  # the finding behind the host's risk level travels along
    assert modules_part["meta"]["secml_context"]["severity_counts"] == {"high": 1, "medium": 13, "low": 11, "info": 209}


def test_specialist_rows_validate(hosts):
    report, _, _ = hosts[0]
    for row in specialist_examples(report, "h", MAX_CHARS):
        assert specialist_row_error(row) is None
        assert json.loads(row["completion"][0]["content"])["version"] == "1.0"


def test_a_scanner_error_and_an_id_reported_twice_split_and_merge_back():
    """What 5.0.0 emits beyond the fixture: `auditd:error` (a user scan cannot stat /etc/audit) and the same
    systemd unit finding twice (/lib and /usr/lib/systemd/system are one folder on merged-usr hosts)."""
    report = json.loads(json.dumps(next(real_reports())))
    unit = {
        "id": "systemd:NoNewPrivileges:backup-agent.service",
        "title": "backup-agent.service NoNewPrivileges",
        "severity": "low",
        "description": "Service may gain new privileges (missing)",
        "base_severity_score": "20",
        "metadata": {"unit": "backup-agent.service", "key": "NoNewPrivileges", "expected": "yes"},
    }
    error = {
        "id": "auditd:error",
        "title": "Scanner error",
        "severity": "error",
        "base_severity_score": "0",
        "description": "filesystem error: status: Permission denied [/etc/audit/audit.rules]",
        "metadata": {},
    }
    report["results"] += [
        {"scanner": "systemd_units", "findings": [unit, dict(unit)]},
        {"scanner": "auditd", "findings": [error]},
    ]
    enrichment = build_enrichment(report)
    parts = split_report(report, MAX_CHARS, enrichment=enrichment)
    assert merge_parts([completion for _, completion in parts]) == enrichment.output
    assert [f["id"] for f in enrichment.output["enriched_findings"]].count(unit["id"]) == 1
    assert "auditd:error" in {f["id"] for f in enrichment.output["enriched_findings"]}


def test_parts_are_cut_from_the_report_alone(hosts, monkeypatch):
    """Inference has no teacher: `split_prompts` never calls it and cuts exactly the parts training was given."""
    import secml_recipes.tasks.split as split

    expected = [[part for part, _ in parts] for _report, _enrichment, parts in hosts]

    def no_teacher(report):
        raise AssertionError("the teacher ran while cutting prompts")

    monkeypatch.setattr(split, "build_enrichment", no_teacher)
    assert [[part for part, _ in split.split_prompts(report, MAX_CHARS)] for report, _, _ in hosts] == expected
