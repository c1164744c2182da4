"""Generated scans are what sys-scan 5.0.0 writes: checked against the spec read from its source, against
the real fixture, and against the source's quirks one by one."""

import json
import statistics
from collections import Counter
from pathlib import Path

import pytest

from secml_recipes.corpus.__main__ import main as data_cli
from secml_recipes.scan import scanner_version
from secml_recipes.scan import spec_5_0_0 as spec
from secml_recipes.scan.fixtures import real_report_paths, real_reports
from secml_recipes.scan.generate import generate_report, plan_hosts, plan_matching, report_bytes
from secml_recipes.scan.host import build_host
from secml_recipes.scan.v5_0_0 import Config, suid_listing


@pytest.fixture(scope="module")
def real():
    return next(real_reports())


@pytest.fixture(scope="module")
def hosts():
    return [generate_report(p) for p in plan_hosts(80, 13)]


@pytest.fixture(scope="module")
def matching(real):
    return [generate_report(p) for p in plan_matching(real, 40, 3)]


def _findings(report, scanner):
    return [f for r in report["results"] if r["scanner"] == scanner for f in r["findings"]]


def test_the_spec_accepts_the_real_report_and_every_generated_one(real, hosts):
    assert spec.report_defects(real) == []
    for report in hosts:
        assert spec.report_defects(report) == []


def test_the_spec_flags_what_5_0_0_never_writes(real):
    bad = json.loads(json.dumps(real))
    module = next(r for r in bad["results"] if r["scanner"] == "modules")["findings"][0]
    module["metadata"]["signed"] = "true"  # ModuleScanner never writes it
    suid = next(r for r in bad["results"] if r["scanner"] == "suid_sgid")["findings"][0]
    suid["id"] = "/tmp/.x/bash"  # outside the six roots SuidScanner walks
    bad["results"].append(
        {
            "elapsed_ms": 0,
            "end_time": "",
            "finding_count": 1,
            "scanner": "network",
            "start_time": "",
            "findings": [dict(module, id="tcp:22:1", title="tcp LISTEN 22")],
        }
    )
    bad["meta"]["effective_config"]["scan_mode"] = "full"  # a 6.x key
    defects = "\n".join(spec.report_defects(bad))
    assert "metadata key 'signed' never written" in defects
    assert "id/title form never emitted: id='/tmp/.x/bash'" in defects
    assert "network: id/title form never emitted" in defects
    assert "effective_config keys differ: ['scan_mode']" in defects


def test_no_finding_of_a_scanner_5_0_0_drops_and_only_registered_scanners(hosts):
    registered = set(spec.SCANNERS)
    for report in hosts:
        assert {r["scanner"] for r in report["results"]} <= registered
        assert _findings(report, "network") == []  # filed under tcp/udp: add_finding drops them


def test_suid_only_under_the_six_roots(hosts):
    roots = ("/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/", "/usr/local/sbin/")
    paths = [f["id"] for h in hosts for f in _findings(h, "suid_sgid")]
    assert paths and all(p.startswith(roots) for p in paths)


def test_suid_array_overwrite_reproduces_the_real_report(real):
    """sys-scan 0.1.0 on the same laptop listed /usr/bin and /usr/sbin in this readdir order
    (tests/fixtures/sys-scan-0.1.0-report.json); 5.0.0's roots overwrite one array from index 0."""
    old = json.loads((Path(__file__).parent / "fixtures" / "sys-scan-0.1.0-report.json").read_text())
    listed = [f["id"] for f in _findings(old, "suid_sgid")]
    usr_bin = [p for p in listed if p.startswith("/usr/bin/")]
    usr_sbin = [p for p in listed if p.startswith("/usr/sbin/")]
    host = build_host(plan_hosts(1, 0)[0])
    inode = {p.rsplit("/", 1)[1]: i for i, p in enumerate(usr_bin + usr_sbin)}
    host.suid_dirs = {
        "/bin": [("/bin/" + p.rsplit("/", 1)[1], inode[p.rsplit("/", 1)[1]]) for p in usr_bin],
        "/sbin": [("/sbin/" + p.rsplit("/", 1)[1], inode[p.rsplit("/", 1)[1]]) for p in usr_sbin],
        "/usr/bin": [(p, inode[p.rsplit("/", 1)[1]]) for p in usr_bin],
        "/usr/sbin": [(p, inode[p.rsplit("/", 1)[1]]) for p in usr_sbin],
        "/usr/local/bin": [],
        "/usr/local/sbin": [],
    }
    assert sorted(suid_listing(host)) == sorted(f["id"] for f in _findings(real, "suid_sgid"))
    assert len(usr_bin) == 16 and len(suid_listing(host)) == 16  # 3 of /usr/bin lost to /usr/sbin's 3


def test_world_writable_lists_only_the_top_level_of_its_roots(hosts):
    roots = {"/usr/bin", "/bin", "/usr/local/bin", "/etc", "/var"}
    for h in hosts:
        for f in _findings(h, "world_writable"):
            assert f["id"].rsplit("/", 1)[0] in roots


def test_canonical_runs_sort_findings_by_id_and_effective_config_follows_the_command_line(hosts):
    canonical = 0
    for h in hosts:
        ec = h["meta"]["effective_config"]
        flags = h["meta"]["cmdline"].split()[1:]
        if "--output" in flags:
            i = flags.index("--output")
            del flags[i : i + 2]
        assert ec == Config.from_flags(tuple(flags)).effective_config()
        assert ec["rules_enable"] == ("true" if "--rules-enable" in flags else "false")
        assert ec["ioc_exec_trace"] == ("true" if "--ioc-exec-trace" in flags else "false")
        if ec["canonical"] == "true":
            canonical += 1
            for r in h["results"]:
                ids = [f["id"] for f in r["findings"]]
                assert ids == sorted(ids)
    assert canonical > len(hosts) // 2


def test_kernel_thread_cmdline_warnings_on_every_host_root_or_not(hosts):
    by_root = {True: [], False: []}
    for h in hosts:
        by_root[h["meta"]["euid"] == "0"].append(
            sum(w["code"] == "proc_unreadable_cmdline" for w in h["collection_warnings"])
        )
    assert by_root[True] and by_root[False] and min(by_root[True] + by_root[False]) >= 40


def test_matching_profile_is_close_to_the_real_report(real, matching):
    modules = [len(_findings(m, "modules")) for m in matching]
    assert 150 <= statistics.mean(modules) <= 240
    real_sev = Counter(f["severity"] for r in real["results"] for f in r["findings"])
    gen_sev = sum((Counter(f["severity"] for r in m["results"] for f in r["findings"]) for m in matching), Counter())
    for sev in ("info", "low", "medium"):
        real_share = real_sev[sev] / sum(real_sev.values())
        assert abs(gen_sev[sev] / sum(gen_sev.values()) - real_share) < 0.03
    for scanner in ("kernel_params", "suid_sgid", "world_writable", "mac"):
        mean = statistics.mean(len(_findings(m, scanner)) for m in matching)
        assert abs(mean - len(_findings(real, scanner))) <= 2
    assert {m["meta"]["cmdline"] for m in matching} == {real["meta"]["cmdline"]}


def test_same_seed_same_bytes_and_only_modelled_versions():
    plans = plan_hosts(4, 99)
    a = [report_bytes(generate_report(p)) for p in plans]
    assert a == [report_bytes(generate_report(p)) for p in plans]  # the same plan objects again
    assert a == [report_bytes(generate_report(p)) for p in plan_hosts(4, 99)]
    assert a != [report_bytes(generate_report(p)) for p in plan_hosts(4, 100)]
    with pytest.raises(ValueError, match="not modelled; available: 5.0.0"):
        scanner_version("6.0.0")


def test_fidelity_command_prints_the_table_and_flags_defects(tmp_path, capsys):
    real_path = real_report_paths()[0]
    assert data_cli(["fidelity", str(real_path), "--hosts", "5", "--out", str(tmp_path / "t.md")]) == 0
    out = capsys.readouterr().out
    assert "| modules | 204 |" in out and "## Severity mix" in out and "None: every key" in out
    gen = tmp_path / "gen"
    gen.mkdir()
    bad = json.loads(real_path.read_text())
    bad["results"][2]["findings"][0]["metadata"]["scan_mode"] = "full"
    (gen / "a.json").write_text(json.dumps(bad))
    assert data_cli(["fidelity", str(real_path), str(gen)]) == 1
    assert "metadata key 'scan_mode' never written" in capsys.readouterr().out
