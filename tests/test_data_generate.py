"""The generator looks like the real scanner (the teacher's tests are in test_teacher.py and test_split.py)."""

import json

import pytest

from secml_recipes.data.fixtures import SCANNERS, SEVERITY_SCORES, real_reports
from secml_recipes.data.generate import PROFILES, generate_report, generate_reports, plan_hosts, report_bytes
from secml_recipes.data.validate import raw_report_error


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
    real = next(real_reports())
    seen_scanners, profiles = set(), set()
    for report in reports:
        assert set(report) == set(real)
        assert set(real["meta"]) - {"provenance"} <= set(report["meta"]) | {"provenance"}
        assert isinstance(report["summary"]["scanner_count"], str)
        assert report["summary_extension"]["total_risk_score"] == sum(
            int(f["base_severity_score"]) for r in report["results"] for f in r["findings"])
        for result in report["results"]:
            seen_scanners.add(result["scanner"])
            assert set(result) == {"scanner", "start_time", "end_time", "elapsed_ms", "finding_count", "findings"}
            assert result["finding_count"] == len(result["findings"])
            for f in result["findings"]:
                assert set(f) == {"id", "title", "severity", "description", "base_severity_score", "metadata"}
                assert f["base_severity_score"] == str(SEVERITY_SCORES[f["severity"]])
                assert all(isinstance(v, str) for v in f["metadata"].values())
                _check_id_convention(result["scanner"], f)
        profiles.add(report["meta"]["hostname"].rsplit("-", 1)[0])
    assert seen_scanners == set(SCANNERS)


def _check_id_convention(scanner, f):
    fid = f["id"]
    if scanner == "kernel_params":
        assert fid.startswith("/proc/sys/") and f["title"] == fid
    elif scanner in ("world_writable", "suid_sgid"):
        assert fid.startswith("/")
    elif scanner == "ioc":
        exe, pid = fid.rsplit(":", 1)
        assert pid.isdigit() and pid == f["metadata"]["pid"]
    elif scanner == "mac":
        assert fid in ("apparmor", "selinux")
    elif scanner == "kernel_hardening":
        assert fid.startswith("kernel:")
    elif scanner == "systemd_units":
        _, key, unit = fid.split(":")
        assert unit.endswith(".service") and f["metadata"]["key"] == key
    elif scanner == "network":
        proto, port, inode = fid.split(":")
        assert proto in ("tcp", "udp") and port == f["metadata"]["lport"] and inode == f["metadata"]["inode"]
    elif scanner == "processes":
        assert fid.isdigit() and f["title"] == f"Process {fid}"
    elif scanner == "mounts":
        assert fid.startswith("mount:")
    elif scanner == "auditd":
        assert fid.startswith("auditd:")
    elif scanner == "modules":
        assert f["title"] == f"Module {fid}"
    elif scanner == "containers":
        assert fid == "container:none" or (len(fid.split(":")[1]) == 12 and f["title"] == f"Container detected {fid[10:]}")
        assert fid == "container:none" or fid[10:] in f["metadata"]["cgroup"]
    elif scanner == "integrity":
        assert fid == "integrity_summary" or fid.startswith(("pkg_mismatch:", "pkg_rehash:"))
    elif scanner == "yara":
        path, tag, pattern = fid.split(":", 2)
        assert tag == "yara" and path == f["metadata"]["path"] and pattern == f["metadata"]["pattern"][:16]
        assert path.startswith(("/usr/bin/", "/bin/", "/usr/local/bin/"))  # the scanner's only roots


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
