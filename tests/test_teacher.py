"""The teacher against an analyst: the real fixture finding by finding, no harmful action anywhere, the
scanner's flags read as the C++ source means them, and the sys-scan-agent format on generated hosts."""

import json

import pytest

from secml_recipes.evaluation.expectations import expectation_problems, load_expectations
from secml_recipes.evaluation.harm import ActionJudge, harm_summary, harmful_actions
from secml_recipes.scan.fixtures import PACKAGED, real_reports
from secml_recipes.scan.generate import generate_report, plan_hosts
from secml_recipes.tasks.validate import enriched_report_error
from secml_recipes.teacher.assess import VERDICTS, Host, assess_finding, assess_report
from secml_recipes.teacher.enrich import enrich_report, risk_score

EXPECTATIONS = PACKAGED / "report-5.0.0-ubuntu24.expectations.yaml"


@pytest.fixture(scope="module")
def fixture():
    report = next(real_reports())
    return report, enrich_report(report), load_expectations(EXPECTATIONS)


@pytest.fixture(scope="module")
def generated():
    return [generate_report(plan) for plan in plan_hosts(40, 21)]


def test_teacher_meets_the_analysts_expectations_for_the_real_fixture(fixture):
    report, enriched, spec = fixture
    assert expectation_problems(enriched, report, spec) == []


def test_every_expectation_names_a_real_finding_and_the_teacher_agrees_on_each_verdict(fixture):
    report, _, spec = fixture
    verdicts = {f["id"]: a.verdict for f, a in assess_report(report)}
    assert set(spec["findings"]) <= set(verdicts)
    wanted = {fid: w["verdict"] for fid, w in spec["findings"].items()}
    assert {fid: verdicts[fid] for fid in spec["findings"]} == wanted
    above_info = {f["id"] for r in report["results"] for f in r["findings"] if f["severity"] != "info"}
    assert above_info <= set(spec["findings"]), "every finding above info has an analyst's verdict"


def test_the_old_teachers_mistakes_fail_the_expectations(fixture):
    report, enriched, spec = fixture
    wrong = json.loads(json.dumps(enriched))
    wrong["actions"] = [
        {
            "priority": 2,
            "action": "Remove the SUID bit (chmod u-s) from /usr/bin/chage unless the package requires it.",
            "correlation_refs": [],
        },
        {"priority": 1, "action": "chmod u-s /usr/bin/fusermount3", "correlation_refs": []},
    ]
    ioc = next(f for f in wrong["enriched_findings"] if "scanner:ioc" in f["tags"])
    ioc["rationale"] = ["A running process executes a file that any user can modify."]
    wrong["summaries"]["analyst"]["risk_level"] = "high"
    problems = " | ".join(expectation_problems(wrong, report, spec))
    for needle in (
        "/usr/bin/chage: is expected but an action names it",
        "mullvad-exclude: needs an action",
        "any user can modify",
        "host risk level is 'high'",
        "harmful action(s)",
    ):
        assert needle in problems
    assert harm_summary(harmful_actions(wrong, report))["harmful_action_rate"] == 1.0


def test_harmful_action_judge_knows_stock_functionality_and_premature_destruction(fixture):
    report, _, _ = fixture
    judge = ActionJudge(report)
    assert judge.judge("chmod u-s /usr/bin/fusermount3").reasons == ["breaks_stock:/usr/bin/fusermount3"]
    assert judge.judge("Review /usr/bin/chage").reasons == ["acts_on_expected:/usr/bin/chage"]
    kill = judge.judge(
        "kill the jetbrains-toolbox process: pkill -f "
        "/home/joseph-mazzini/Desktop/jetbrains-toolbox-2.8.1.52155/bin/jetbrains-toolbox"
    )
    assert kill.reasons[0].startswith("destructive_without_evidence:")
    assert judge.judge("chmod o-w /var/test_world_writable_file").reasons == []  # a fix, not a destruction
    assert judge.judge("Verify provenance of /usr/bin/mullvad-exclude: dpkg -S").reasons == []
    assert judge.targets("sudo and /usr/bin/su") == ["/usr/bin/su"]  # /usr/bin/su is not /usr/bin/sudo
    assert judge.targets("set net.ipv4.ip_forward = 0") == ["/proc/sys/net/ipv4/ip_forward"]


def test_the_ioc_rationale_reads_the_flag_as_the_scanner_source_means_it(fixture):
    _, enriched, _ = fixture
    ioc = next(f for f in enriched["enriched_findings"] if "scanner:ioc" in f["tags"])
    text = " ".join(ioc["rationale"])
    assert "path starts with" in text and "never checked its permissions" in text
    assert "Cleared by" in text and "confirmed by" in text


def test_coverage_says_what_the_scan_did_not_look_at(fixture):
    _, enriched, _ = fixture
    coverage = enriched["summaries"]["analyst"]["coverage"]
    assert coverage["collected_as"] == "uid 1000 (not root)"
    assert (
        coverage["not_run"]["mounts"] == "hardening off" and coverage["not_run"]["processes"] == "process_inventory off"
    )
    assert "network" in coverage["ran_empty"]
    assert any("not root" in line for line in coverage["limits"])
    assert coverage["warnings"]["proc_unreadable_cmdline"].startswith("152:")


def test_risk_score_is_sys_scan_agents_formula():
    # sys_scan_agent.risk.compute_risk with default weights (5, 3, 2) over caps (10, 3, 2), times confidence
    assert risk_score({"impact": 10, "exposure": 3, "anomaly": 2, "confidence": 1.0}) == 100
    assert risk_score({"impact": 2.0, "exposure": 0.5, "anomaly": 0.0, "confidence": 0.9}) == round(11.5 / 63 * 90)
    assert risk_score({"impact": 0, "exposure": 0, "anomaly": 0, "confidence": 1}) == 0


@pytest.mark.parametrize(
    "family,path,verdict",
    [
        ("debian", "/usr/bin/chage", "expected"),
        ("rhel", "/usr/bin/chage", "expected"),
        ("rhel", "/usr/sbin/unix_chkpwd", "expected"),
        ("debian", "/usr/bin/mullvad-exclude", "verify_provenance"),
        ("debian", "/usr/local/bin/backup-helper", "verify_provenance"),
        ("debian", "/tmp/.x/bash", "contain"),
        ("rhel", "/usr/bin/expiry", "verify_provenance"),
    ],
)
def test_suid_verdicts_come_from_the_tables(family, path, verdict):
    host = Host("h", family, "Ubuntu 24.04" if family == "debian" else "Fedora 41", "u", "0", {})
    finding = {"id": path, "severity": "medium", "title": "SUID/SGID binary", "metadata": {}}
    assessed = assess_finding("suid_sgid", finding, host)
    assert assessed.verdict == verdict
    assert (assessed.action is None) == VERDICTS[verdict].expected


@pytest.mark.parametrize(
    "exe,metadata,verdict",
    [
        (
            "/tmp/.x/kworkerd",
            {
                "command": "/tmp/.x/kworkerd -o pool.example:4444",
                "pattern_match": "true",
                "world_writable_executable": "true",
            },
            "contain",
        ),
        ("/dev/shm/.s/sshd", {"deleted_executable": "true", "world_writable_executable": "true"}, "contain"),
        ("/usr/lib/firefox/firefox", {"deleted_executable": "true"}, "review"),
        ("/home/u/.vscode-server/bin/abc/node", {"world_writable_executable": "true"}, "investigate"),
        ("/usr/bin/python3.12", {"environment_issue": "true"}, "investigate"),
    ],
)
def test_ioc_verdicts_follow_the_evidence(exe, metadata, verdict):
    host = Host("h", "debian", "Ubuntu 24.04", "u", "1000", {})
    finding = {
        "id": f"{exe}:4242",
        "severity": "high",
        "title": "Process IOC Detected",
        "metadata": {"pid": "4242", **metadata},
    }
    assessed = assess_finding("ioc", finding, host)
    assert assessed.verdict == verdict
    if verdict != "contain":
        assert (
            harm_summary(
                [
                    ActionJudge({"meta": {}, "results": [{"scanner": "ioc", "findings": [finding]}]}).judge(
                        assessed.action
                    )
                ]
            )["harmful"]
            == 0
        )


def test_generated_hosts_validate_and_never_get_a_harmful_action(generated):
    for report in generated:
        enriched = enrich_report(report)
        assert enriched_report_error(enriched) is None
        assert harm_summary(harmful_actions(enriched, report))["harmful"] == 0
        ids = {f["id"] for r in report["results"] for f in r["findings"]}
        for c in enriched["correlations"]:
            assert set(c["related_finding_ids"]) <= ids
        for f in enriched["enriched_findings"]:
            assert risk_score(f["risk_subscores"]) == f["risk_score"]


def test_compromised_hosts_are_critical_and_stock_hosts_are_not(generated):
    levels = {}
    for plan, report in zip(plan_hosts(40, 21), generated):
        levels.setdefault(plan.profile, set()).add(enrich_report(report)["summaries"]["analyst"]["risk_level"])
    assert levels["compromised_host"] == {"critical"}
    assert "critical" not in levels.get("hardened_server", set())


def test_old_format_rows_are_refused_with_the_rebuild_hint():
    assert "make data" in enriched_report_error({"enrichment_version": "1", "findings": []})


def test_teacher_check_prints_the_measured_tables(capsys):
    from secml_recipes.evaluation.teacher_check import main

    assert main(["--hosts", "4", "--episodes", "12", "--max-prompt-chars", "8000"]) == 0
    out = capsys.readouterr().out
    assert "| problems | 0 |" in out and "| harmful actions | 0 |" in out
    assert "| correlations in no part | 0 |" in out and "distinct tool-call sequences" in out
    assert "| independent judge (4 hosts of every profile, seed 1234) |" in out and "| judge_harmful_rate |" in out
