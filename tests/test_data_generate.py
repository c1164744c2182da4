"""The generator looks like the real scanner (the teacher's tests are in test_teacher.py and test_split.py)."""

import json

import pytest

from secml_recipes.scan.fixtures import SCANNERS, SEVERITY_SCORES, real_reports
from secml_recipes.scan.generate import PROFILES, generate_report, generate_reports, plan_hosts, report_bytes
from secml_recipes.tasks.validate import raw_report_error


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
    from secml_recipes.scan.spec_5_0_0 import report_defects

    real = next(real_reports())
    seen_scanners = set()
    for report in reports:
        assert set(real) <= set(report) <= set(real) | {"compliance_summary"}
        assert set(real["meta"]) == set(report["meta"])
        assert isinstance(report["summary"]["scanner_count"], str)
        assert report["summary_extension"]["total_risk_score"] == sum(
            int(f["base_severity_score"]) for r in report["results"] for f in r["findings"]
        )
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


def test_old_reports_are_refused_with_a_reason():
    old = json.loads(json.dumps(next(real_reports())))
    del old["meta"]["json_schema_version"]
    assert "older than schema v2" in raw_report_error(old)
    assert "JSON object" in raw_report_error([1, 2])
