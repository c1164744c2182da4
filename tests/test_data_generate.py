"""The generator looks like the real scanner; the enricher says true things about the real fixture."""

import json

import pytest

from secml_recipes.data.enrich import enrich_report
from secml_recipes.data.fixtures import SCANNERS, SEVERITY_SCORES, real_reports
from secml_recipes.data.generate import PROFILES, generate_report, generate_reports, plan_hosts, report_bytes
from secml_recipes.data.split import split_report
from secml_recipes.data.validate import enriched_report_error, raw_report_error


@pytest.fixture(scope="module")
def reports():
    return list(generate_reports(60, seed=21))


def test_real_fixture_validates_without_risk_score():
    report = next(real_reports())
    assert all("risk_score" not in f for r in report["results"] for f in r["findings"])
    assert raw_report_error(report) is None


def test_every_generated_report_validates_against_schema_v2(reports):
    for report in reports:
        assert raw_report_error(report) is None


def test_generated_reports_follow_the_scanners_conventions(reports):
    """Structure as the real report; every finding a form sys-scan 5.0.0 writes (the spec, checked in
    test_scan_fidelity.py against the source's rules and the real fixture)."""
    from secml_recipes.data.sysscan.spec_5_0_0 import report_defects

    real = next(real_reports())
    seen_scanners = set()
    for report in reports:
        assert set(real) <= set(report) <= set(real) | {"compliance_summary"}
        assert set(real["meta"]) == set(report["meta"])
        assert isinstance(report["summary"]["scanner_count"], str)
        assert report["summary_extension"]["total_risk_score"] == sum(
            int(f["base_severity_score"]) for r in report["results"] for f in r["findings"])
        for result in report["results"]:
            seen_scanners.add(result["scanner"])
            assert set(result) == {"scanner", "start_time", "end_time", "elapsed_ms", "finding_count", "findings"}
            assert result["finding_count"] == len(result["findings"])
            for f in result["findings"]:
                assert f["base_severity_score"] == str(SEVERITY_SCORES[f["severity"]])
                assert all(isinstance(v, str) for v in f["metadata"].values())
        assert report_defects(report) == []
    assert set(SCANNERS) - {"yara"} <= seen_scanners


def test_all_profiles_occur():
    assert {p.profile for p in plan_hosts(60, 21)} == set(PROFILES)


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = [report_bytes(generate_report(p)) for p in plan_hosts(5, 99)]
    b = [report_bytes(generate_report(p)) for p in plan_hosts(5, 99)]
    c = [report_bytes(generate_report(p)) for p in plan_hosts(5, 100)]
    assert a == b and a != c


def test_enricher_on_the_real_fixture_puts_the_ioc_first():
    report = next(real_reports())
    enriched = enrich_report(report)
    assert enriched_report_error(enriched) is None
    top = enriched["reductions"]["top_risks"][0]
    assert top["id"].endswith("/bin/jetbrains-toolbox:361364")
    first = enriched["findings"][0]
    assert first["category"] == "ioc" and "world_writable_executable" in first["tags"]
    assert "T1574.010" in first["attack_techniques"] and first["baseline_status"] == "new"
    assert enriched["actions"][0]["finding_ids"] == [top["id"]]
    assert "jetbrains-toolbox" in enriched["summary"]["executive_summary"]
    assert enriched["summary"]["severity_counts"] == {"high": 1, "info": 209, "low": 11, "medium": 13}
    assert enriched["reductions"]["module_summary"]["total"] == 204
    stock = {f["id"]: f for f in enriched["findings"]}
    assert "/usr/bin/sudo" not in stock  # expected SUID binaries are counted, not listed


def test_enricher_validates_and_correlates_on_generated_hosts(reports):
    rules = set()
    for report in reports:
        enriched = enrich_report(report)
        assert enriched_report_error(enriched) is None
        ids = {f["id"] for r in report["results"] for f in r["findings"]}
        for c in enriched["correlations"]:
            rules.add(c["rule"])
            assert set(c["related_finding_ids"]) <= ids
    # Rules that 5.0.0 data triggers here (ioc_process_network, persistence_service and container_escape_path
    # need network findings, an exec_start key or a docker.sock file listing that 5.0.0 never writes).
    assert {"ioc_without_exec_audit", "replaced_binary"} <= rules


def test_split_parts_keep_meta_and_enrich_each_finding_identically():
    report = next(real_reports())
    parts = split_report(report, 4000)
    assert len(parts) > 1
    whole = {f["id"]: f for f in enrich_report(report)["findings"]}
    seen = set()
    for i, part in enumerate(parts):
        assert part["meta"]["secml_part"] == f"{i + 1}/{len(parts)}"
        assert {k: v for k, v in part["meta"].items() if k != "secml_part"} == report["meta"]
        assert raw_report_error(part) is None
        for f in enrich_report(part)["findings"]:
            if f["id"] in whole and not f["correlation_refs"] and not whole[f["id"]]["correlation_refs"]:
                assert f == whole[f["id"]]
        seen |= {f["id"] for r in part["results"] for f in r["findings"]}
    assert seen == {f["id"] for r in report["results"] for f in r["findings"]}
    assert sum(len(p["collection_warnings"]) for p in parts) == len(report["collection_warnings"])


def test_old_reports_are_refused_with_a_reason():
    old = json.loads(json.dumps(next(real_reports())))
    del old["meta"]["json_schema_version"]
    assert "older than schema v2" in raw_report_error(old)
    assert "JSON object" in raw_report_error([1, 2])
