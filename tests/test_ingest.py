"""Ingest: sys-scan's --ndjson stream (rebuilt from the writer's source), 0.1.x reports, labelled pairs, and
every failure mode counted, reported in one line and never losing what was already written."""

import errno
import json
from pathlib import Path

import pytest

from secml_recipes.corpus.__main__ import main as data_cli
from secml_recipes.corpus.tarball import read_split
from secml_recipes.scan import legacy, ndjson
from secml_recipes.scan import spec_5_0_0 as spec
from secml_recipes.scan.fixtures import real_report_paths, real_reports
from secml_recipes.scan.generate import generate_report, plan_hosts
from secml_recipes.tasks.prompts import compact
from secml_recipes.tasks.validate import raw_report_error
from secml_recipes.teacher.coverage import scan_coverage
from secml_recipes.teacher.enrich import enrich_report

OLD_REPORT = Path(__file__).parent / "fixtures" / "sys-scan-0.1.0-report.json"


def _ingest(*args) -> int:
    return data_cli(["ingest", *map(str, args)])


def _rows(out, split="train"):
    return read_split(out, "specialist", split, verbose=False)[0]


@pytest.fixture(scope="module")
def real():
    return next(real_reports())


def test_ndjson_writer_follows_jsonwriter(real):
    lines = ndjson.write_ndjson(real).splitlines()
    assert len(lines) == 3 + 234  # meta, summary, summary_extension, one line per finding
    assert lines[0] == (
        '{"type":"meta","tool_version":"5.0.0","schema":"2","hostname":"SurfTop888","uid":1000,'
        '"euid":1000,"gid":1000,"egid":1000,"user":"joseph-mazzini",'
        '"cmdline":"sys-scan --canonical --output report.json "}'
    )
    assert lines[1] == (
        '{"type":"summary","duration_ms":3051,"finding_count_total":234,"finding_count_emitted":234,'
        '"scanner_count":14,"scanners_with_findings":7,'
        '"slowest_scanner":{"name":"ebpf_exec_trace","elapsed_ms":3023}}'
    )
    assert lines[2] == '{"type":"summary_extension","total_risk_score":3140,"emitted_risk_score":3140}'
    assert lines[3] == (
        '{"type":"finding","scanner":"kernel_params","id":"/proc/sys/kernel/kptr_restrict",'
        '"severity":"info","base_severity_score":10}'
    )


def test_ndjson_reader_rebuilds_only_what_the_source_determines(real):
    """Every field rebuilt from a finding line equals the real finding's (real report and generated ones)."""
    reports = [real] + [generate_report(p) for p in plan_hosts(25, 8)]
    rebuilt = left = 0
    for report in reports:
        for r in report["results"]:
            for f in r["findings"]:
                line = {
                    "type": "finding",
                    "scanner": r["scanner"],
                    "id": f["id"],
                    "severity": f["severity"],
                    "base_severity_score": int(f["base_severity_score"]),
                }
                got, reason = ndjson.rebuild_finding(line)
                if got is None:
                    left += 1
                    assert f["id"] == "proc.exec.detected" and "does not record" in reason
                    continue
                rebuilt += 1
                for key in ("id", "title", "severity", "base_severity_score", "description"):
                    if key in got:
                        assert got[key] == f[key], (r["scanner"], f["id"], key)
                assert got["metadata"].items() <= f["metadata"].items(), (r["scanner"], f["id"])
    assert rebuilt > 5000 and left > 0


def test_ingest_reads_the_scanners_own_ndjson(tmp_path, real, capsys):
    stream = tmp_path / "scans.ndjson"
    other = generate_report(plan_hosts(1, 4)[0])
    stream.write_text(ndjson.write_ndjson(real) + ndjson.write_ndjson(other, timings=True))
    assert _ingest(stream, "--out", tmp_path / "out") == 0
    out = capsys.readouterr().out
    assert "2 reports accepted" in out and "0 refused" in out
    rows = _rows(tmp_path / "out")
    prompts = [json.loads(r["prompt"][-1]["content"]) for r in rows]
    assert {p["meta"]["hostname"] for p in prompts} == {"SurfTop888", other["meta"]["hostname"]}
    for p in prompts:
        assert raw_report_error(p) is None


def test_ndjson_bad_lines_are_refused_with_their_line(tmp_path, real, capsys):
    lines = ndjson.write_ndjson(real).splitlines()
    lines.insert(5, '{"type":"finding","scanner":"ioc","id":"x"}')
    lines.insert(0, '{"type":"summary","duration_ms":1}')
    path = tmp_path / "s.ndjson"
    path.write_text("\n".join(lines) + "\n")
    assert _ingest(path, "--out", tmp_path / "out") == 1
    out = capsys.readouterr().out
    assert f"refused {path}:1: summary line without 'finding_count_total'" in out
    assert f"refused {path}:7: finding line without 'severity'" in out
    assert "1 reports accepted" in out


def test_old_reports_are_converted_to_the_5_0_0_shape():
    old = json.loads(OLD_REPORT.read_text())
    assert legacy.is_legacy(old) and "json_schema_version" not in old["meta"]
    report, left_out = legacy.convert(old)
    assert raw_report_error(report) is None and report["meta"]["tool_version"] == "0.1.0"
    counts = {r["scanner"]: r["finding_count"] for r in report["results"]}
    # 38 SUID findings are 19 files under both spellings on merged /usr (Ubuntu 24.04)
    assert counts["network"] == 26 and counts["suid_sgid"] == 19 and counts["processes"] == 31
    # Only what 0.1.0 never recorded (provenance) and the sockets 5.0.0 drops differ from 5.0.0.
    assert all(d.startswith(("network:", "provenance keys differ")) for d in spec.report_defects(report))
    by_id = {f["id"]: f for r in report["results"] for f in r["findings"]}
    assert by_id["/usr/bin/sudo"]["severity"] == "low" and by_id["/usr/bin/sudo"]["metadata"] == {"expected": "true"}
    assert by_id["tcp:53:17411"]["title"] == "tcp LISTEN 53"  # the form 5.0.0's NetworkScanner builds
    env = [f for f in by_id.values() if f["title"] == "Process IOC Detected"]
    assert env and all(f["severity"] == "medium" and f["metadata"]["environment_issue"] == "true" for f in env)
    assert all(f["metadata"]["command"].startswith("/snap/firefox") for f in env)  # argv[0] from the processes


def test_old_reports_without_anything_that_maps_are_refused(tmp_path, capsys):
    made_up = {
        "meta": {"hostname": "h1", "tool_version": "0.1", "json_schema_version": "2"},
        "results": [
            {
                "scanner": "network",
                "finding_count": 1,
                "findings": [
                    {
                        "id": "n1",
                        "title": "TCP 22 listening",
                        "severity": "info",
                        "risk_score": 10,
                        "metadata": {"state": "LISTEN", "port": 22},
                    }
                ],
            }
        ],
    }
    (tmp_path / "old.json").write_text(json.dumps(made_up))
    (tmp_path / "real-old.json").write_text(OLD_REPORT.read_text())
    assert _ingest(tmp_path / "old.json", tmp_path / "real-old.json", "--out", tmp_path / "out") == 1
    out = capsys.readouterr().out
    assert "0.1.x report with nothing that maps to 5.0.0: network finding without protocol" in out
    assert "1 reports accepted" in out


def test_labelled_pairs(tmp_path, capsys):
    raw = generate_report(plan_hosts(3, 2)[0])
    raw["results"] = [r for r in raw["results"] if r["scanner"] in ("suid_sgid", "kernel_params", "mac")]
    enriched = enrich_report(raw)  # stands in for an analyst's label: any enriched report that validates
    (tmp_path / "pairs").mkdir()
    (tmp_path / "pairs" / "host.json").write_text(json.dumps(raw))
    (tmp_path / "pairs" / "host.enriched.json").write_text(json.dumps(enriched))
    (tmp_path / "pairs" / "lonely.enriched.json").write_text(json.dumps(enriched))
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    (tmp_path / "bad.enriched.json").write_text(json.dumps({"findings": "none"}))
    code = _ingest(
        tmp_path / "pairs",
        "--pair",
        tmp_path / "bad.json",
        tmp_path / "bad.enriched.json",
        "--out",
        tmp_path / "out",
        "--max-prompt-chars",
        "200000",
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "lonely.enriched.json: labelled enriched report without its raw report lonely.json" in out
    assert "enriched report is not in the enriched format" in out
    rows = _rows(tmp_path / "out")
    assert len(rows) == 1 and rows[0]["id"].endswith("-labelled")
    assert rows[0]["completion"][0]["content"] == compact(enriched)
    assert json.loads(rows[0]["prompt"][-1]["content"]) == raw
    big = generate_report(plan_hosts(3, 2)[0])
    (tmp_path / "big.json").write_text(json.dumps(big))
    assert (
        _ingest(
            "--pair",
            tmp_path / "big.json",
            tmp_path / "pairs" / "host.enriched.json",
            "--out",
            tmp_path / "out2",
            "--max-prompt-chars",
            "3000",
        )
        == 1
    )
    assert "a labelled pair must fit one" in capsys.readouterr().out


def test_second_ingest_appends_and_duplicates_are_skipped(tmp_path, capsys):
    real = real_report_paths()[0]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(generate_report(plan_hosts(1, 9)[0])))
    out = tmp_path / "out"
    assert _ingest(real, "--out", out) == 0
    first = _rows(out)
    assert _ingest(other, real, "--out", out) == 0
    assert "1 already ingested" in capsys.readouterr().out
    second = _rows(out)
    assert len(second) > len(first) and {r["id"] for r in first} <= {r["id"] for r in second}
    assert sorted(p.name for p in (out / "specialist").iterdir()) == ["train-00000.jsonl", "train-00001.jsonl"]
    assert _ingest(other, "--out", out, "--overwrite") == 0
    assert sorted(p.name for p in (out / "specialist").iterdir()) == ["train-00000.jsonl"]


def test_every_input_counted_missing_paths_and_folders(tmp_path, capsys):
    folder = tmp_path / "in"
    (folder / "deep").mkdir(parents=True)
    (folder / "deep" / "real.json").write_text(real_report_paths()[0].read_text())
    (folder / "empty.json").write_text("")
    (folder / "notes.txt").write_text("ignored: not a report suffix")
    (folder / "nan.json").write_text('{"meta": NaN}')
    (folder / "latin1.json").write_bytes(b'{"meta": "caf\xe9"}')
    code = _ingest(folder, tmp_path / "nope.json", "--out", tmp_path / "out")
    out = capsys.readouterr().out
    assert code == 1 and "Traceback" not in out
    assert "ingest: 5 inputs, 1 reports accepted" in out and "4 refused" in out
    assert f"refused {tmp_path / 'nope.json'}: no such file or directory" in out
    assert "empty file" in out and "not UTF-8 text" in out and "NaN is not a JSON number" in out
    rejects = [json.loads(line) for line in (tmp_path / "out" / "ingest.rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == 4


def test_nothing_accepted_exits_non_zero(tmp_path):
    (tmp_path / "a.json").write_text("{broken")
    assert _ingest(tmp_path / "a.json", "--out", tmp_path / "out") == 1


def test_full_disk_leaves_earlier_shards_whole(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert _ingest(real_report_paths()[0], "--out", out) == 0
    before = {p.name: p.read_bytes() for p in (out / "specialist").iterdir()}
    manifest = (out / "manifest.json").read_bytes()
    other = tmp_path / "other.json"
    other.write_text(json.dumps(generate_report(plan_hosts(1, 5)[0])))
    real_fsync = __import__("os").fsync

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", fsync)
    assert _ingest(other, "--out", out) == 2
    assert "No space left on device; nothing from this run was written" in capsys.readouterr().err
    monkeypatch.setattr("os.fsync", real_fsync)
    assert {p.name: p.read_bytes() for p in (out / "specialist").iterdir()} == before
    assert (out / "manifest.json").read_bytes() == manifest
    assert not list(out.rglob(".*tmp-*"))
    assert len(_rows(out)) > 0


def test_an_unrelated_folder_is_not_taken_over(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    assert _ingest(real_report_paths()[0], "--out", tmp_path / "mine") == 2
    assert "is not an ingest folder" in capsys.readouterr().err


def test_generated_ndjson_is_the_same_scan_in_scan_order(tmp_path):
    from secml_recipes.scan.generate import generate_ndjson

    plan = plan_hosts(2, 6)[1]
    report, text = generate_report(plan), generate_ndjson(plan)
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["type"] == "meta" and "--ndjson" in lines[0]["cmdline"].split()
    ids = [o["id"] for o in lines if o["type"] == "finding"]
    assert sorted(ids) == sorted(f["id"] for r in report["results"] for f in r["findings"])
    modules = [o["id"] for o in lines if o["type"] == "finding" and o["scanner"] == "modules"]
    assert modules != sorted(modules)  # /proc/modules order, not --canonical's
    (tmp_path / "scan.ndjson").write_text(text)
    assert _ingest(tmp_path / "scan.ndjson", "--out", tmp_path / "out") == 0


# -- 0.1.x reports converted faithfully: each case a small report in 0.1.x's own forms (IOCScanner.cpp,
# SuidScanner.cpp, NetworkScanner.cpp and JSONWriter.cpp of sys-scan-graph's first commit and tag v0.1.0) --------


def _old(*results, cmdline="./sys-scan", os_id="ubuntu", os_version="24.04", started="2025-08-25T12:17:04Z"):
    """A 0.1.x report: meta as JSONWriter wrote it (numeric uids, argv[0] glued to the next argument)."""
    return {
        "meta": {
            "hostname": "laptop",
            "kernel": "6.14.0-28-generic",
            "arch": "x86_64",
            "os_id": os_id,
            "os_version": os_version,
            "user": "alice",
            "uid": 1000,
            "euid": 1000,
            "gid": 1000,
            "egid": 1000,
            "cmdline": cmdline,
            "tool_version": "0.1.0",
        },
        "summary": {"scanner_count": len(results), "started_at": started, "finished_at": started, "duration_ms": 9},
        "results": [
            {"scanner": name, "start_time": started, "end_time": started, "elapsed_ms": 3, "findings": list(findings)}
            for name, findings in results
        ],
    }


def _f(id_, title, severity="info", description="", **metadata):
    return {"id": id_, "title": title, "severity": severity, "description": description, "metadata": metadata}


def _env(exe, pids, severity="medium", pid_count=None):
    """IOCScanner's aggregated environment hit (one finding per executable, at most 5 sample pids)."""
    md = {"exe": exe, "pid_count": str(pid_count or len(pids)), "sample_pids": ",".join(pids)}
    return _f(f"{exe}:env", "Suspicious environment", severity, "Environment references LD_* in temp paths", **md)


def _by_id(report):
    return {f["id"]: f for r in report["results"] for f in r["findings"]}


def test_old_ioc_allow_list_is_kept(tmp_path, capsys):
    old = _old(
        (
            "ioc",
            [
                _env("/snap/firefox/6700/usr/lib/firefox/firefox", ["65185"]),
                _env("/snap/firefox/6700/usr/lib/firefox/crashhelper", ["64970"], severity="low"),
                _env("/opt/tool/bin/tool", ["4242"]),
            ],
        ),
        cmdline="./sys-scan--enable ioc --ioc-allow /snap/,/usr/lib/firefox --pretty ",
    )
    report, left_out = legacy.convert(old)
    assert report["meta"]["cmdline"] == "./sys-scan --enable ioc --ioc-allow /snap/,/usr/lib/firefox --pretty "
    assert list(_by_id(report)) == ["/opt/tool/bin/tool:4242"]  # the one executable the user did not allowlist
    reasons = sorted(x["reason"] for x in left_out)
    assert len(reasons) == 2 and all("the user allowlisted (--ioc-allow '/snap/')" in r for r in reasons)
    enriched = enrich_report(report)
    assert "firefox" not in json.dumps(enriched)  # no finding, correlation or action about allowlisted hits
    # A report that says nothing of the list still shows it: 0.1.x rated an environment hit low only when allowlisted.
    plain = _old(("ioc", [_env("/snap/x/1/bin/x", ["7"], severity="low"), _env("/usr/bin/y", ["8"])]))
    assert list(_by_id(legacy.convert(plain)[0])) == ["/usr/bin/y:8"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert _ingest(tmp_path / "old.json", "--out", tmp_path / "out") == 0
    assert "2 findings left out" in capsys.readouterr().out


def test_old_environment_hit_means_a_loader_variable_and_merges_with_the_process_hit():
    """0.1.x: LD_PRELOAD= or LD_LIBRARY_PATH= set and /tmp or /dev/shm named anywhere in the environment; 5.0.0's
    environment_issue: one of the two variables set. The first implies the second, and 5.0.0 writes one finding
    per process with every flag, where 0.1.x wrote the pid's pattern and environment hits apart."""
    procs = [_f("900", "Process 900", description="/tmp/.cache/kworkerd"), _f("901", "Process 901", description="vim")]
    old = _old(
        ("processes", procs),
        (
            "ioc",
            [
                _f(
                    "900",
                    "Process IOC",
                    "high",
                    "/tmp/.cache/kworkerd",
                    exe="/tmp/.cache/kworkerd",
                    pattern_match="true",
                ),
                _f(
                    "900:env",
                    "Suspicious environment",
                    "medium",
                    "Environment references LD_* in temp paths",
                    exe="/tmp/.cache/kworkerd",
                ),
                _f(
                    "901:env",
                    "Suspicious environment",
                    "medium",
                    "Environment references LD_* in temp paths",
                    exe="/usr/bin/vim.basic",
                ),
            ],
        ),
    )
    report, _ = legacy.convert(old)
    ioc = _by_id(report)
    both = ioc["/tmp/.cache/kworkerd:900"]
    assert len([f for f in ioc if f.endswith(":900")]) == 1
    assert (
        both["severity"] == "high"
        and both["description"] == "Process with world-writable executable: /tmp/.cache/kworkerd"
    )
    assert {k: v for k, v in both["metadata"].items() if v == "true"} == {
        "pattern_match": "true",
        "world_writable_executable": "true",
        "environment_issue": "true",
    }
    env_only = ioc["/usr/bin/vim.basic:901"]
    assert env_only["severity"] == "medium" and env_only["metadata"] == {
        "command": "vim",
        "environment_issue": "true",
        "pid": "901",
    }
    assert "temp" not in env_only["description"]  # 0.1.x's title overstated it: the variable itself may not point there
    assert not [d for d in spec.report_defects(report) if d.startswith("ioc")]


def test_old_process_counts_are_carried_over():
    seventeen = [str(p) for p in (92994, 77724, 65185, 65732, 73820)]
    old = _old(("ioc", [_env("/usr/lib/slack/slack", seventeen, pid_count=17), _env("/usr/bin/z", ["5", "6"])]))
    ioc = _by_id(legacy.convert(old)[0])
    slack = [f for i, f in ioc.items() if i.startswith("/usr/lib/slack/slack:")]
    assert sorted(f["metadata"]["pid"] for f in slack) == sorted(seventeen)
    assert {f["metadata"]["pid_count"] for f in slack} == {"17"}  # 17 processes, 5 named
    assert all("pid_count" not in ioc[f"/usr/bin/z:{p}"]["metadata"] for p in ("5", "6"))  # all named: nothing lost


def test_old_paths_are_the_usr_spelling_on_merged_usr():
    suid = [
        _f(p, "SUID/SGID binary", "medium", "Binary has SUID or SGID bit set")
        for p in ("/bin/su", "/usr/bin/su", "/sbin/pppd")
    ]
    merged = _by_id(legacy.convert(_old(("suid_sgid", suid)))[0])
    assert sorted(merged) == ["/usr/bin/su", "/usr/sbin/pppd"]  # what `dpkg -S` knows on Ubuntu 24.04
    assert merged["/usr/bin/su"]["metadata"] == {"expected": "true"}
    split = _by_id(legacy.convert(_old(("suid_sgid", suid), os_id="debian", os_version="11"))[0])
    assert sorted(split) == ["/bin/su", "/sbin/pppd", "/usr/bin/su"]  # Debian 11 may still have a real /bin
    # An unlisted distribution proves it itself: one inode, both names (v0.1.0's alt_paths).
    twin = _f("/bin/mount", "SUID/SGID binary", "medium", "", alt_paths="/usr/bin/mount,/tmp/.m", alt_path_count="2")
    report, left_out = legacy.convert(_old(("suid_sgid", [twin]), os_id="gentoo", os_version="2.17"))
    assert list(_by_id(report)) == ["/usr/bin/mount"]
    assert [x["reason"] for x in left_out] == [
        "/tmp/.m is another name of the same SUID/SGID file (0.1.x alt_paths); 5.0.0 reports one name per file"
    ]


def test_old_ipv6_sockets_are_decoded_and_loopback_is_not_exposure():
    assert legacy.socket_address("0000:0000:0000:0000:0000:0000:0100:0000", "x86_64") == "::1"
    assert legacy.socket_address("0000:0000:0000:0000:FFFF:0000:0100:007F", "x86_64") == "::ffff:127.0.0.1"
    assert legacy.socket_address("0000:0000:0000:0000:0000:0000:0000:0001", "s390x") == "::1"
    assert legacy.socket_address("127.0.0.1", "x86_64") == "127.0.0.1"
    assert legacy.is_loopback("::1") and legacy.is_loopback("::ffff:127.0.0.1") and not legacy.is_loopback("::")

    def cups(lip, inode):
        md = {"protocol": "tcp", "lip": lip, "lport": "631", "inode": inode, "rip": "0" * 32, "state": "LISTEN"}
        return _f(f"network:631:{inode}", "network LISTEN 631", "high", "TCP socket", **md)

    net = [cups("0000:0000:0000:0000:0000:0000:0100:0000", "1"), cups("0000:0000:0000:0000:0000:0000:0000:0000", "2")]
    sockets = {f["metadata"]["lip"]: f for f in _by_id(legacy.convert(_old(("network", net)))[0]).values()}
    assert sockets["::1"]["severity"] == "medium" and "wildcard_listen" not in sockets["::1"]["metadata"]
    assert sockets["::"]["severity"] == "high" and sockets["::"]["metadata"]["wildcard_listen"] == "true"
    real = _by_id(legacy.convert(json.loads(OLD_REPORT.read_text()))[0])
    assert real["tcp6:631:218874"]["metadata"]["lip"] == "::1" and real["tcp6:631:218874"]["severity"] == "medium"


def test_old_scans_say_which_scanners_ran():
    full = legacy.convert(json.loads(OLD_REPORT.read_text()))[0]
    assert full["meta"]["effective_config"]["process_inventory"] == "true"  # 0.1.x listed every process
    coverage = scan_coverage(full)
    assert (
        "processes" not in coverage["not_run"] and coverage["not_run"]["mounts"] == "no such scanner in sys-scan 0.1.0"
    )
    only_ioc = legacy.convert(_old(("ioc", [_env("/usr/bin/y", ["8"])]), cmdline="./sys-scan--enable ioc"))[0]
    assert only_ioc["meta"]["effective_config"]["process_inventory"] == "false"
    not_run = scan_coverage(only_ioc)["not_run"]
    assert not_run["suid_sgid"].startswith("absent from the report") and not_run["processes"].startswith("absent")


def test_old_modules_summary_keeps_its_module_count():
    summary = _f("module_summary", "Kernel modules summary", "info", "Loaded kernel modules inventory",
                 likely_out_of_tree="0", sample="zram,tls,vboxdrv", total="205")  # fmt: skip
    report = legacy.convert(_old(("modules", [summary]), cmdline="./sys-scan--enable modules --modules-summary"))[0]
    assert report["meta"]["effective_config"]["modules_summary_only"] == "true"
    assert _by_id(report)["module_summary"]["metadata"]["out_of_tree_count"] == "0"
    reduction = enrich_report(report)["reductions"]["module_summary"]
    assert reduction["module_count"] == 205 and reduction["distinct_modules"] == 205
    assert not any("by name only" in limit for limit in scan_coverage(report)["limits"])


def test_scans_that_convert_to_the_same_rows_are_kept_once_and_counted(tmp_path, capsys):
    suid = [_f("/bin/su", "SUID/SGID binary", "medium", "Binary has SUID or SGID bit set")]
    first, again = _old(("suid_sgid", suid)), _old(("suid_sgid", suid), started="2025-08-25T12:22:33Z")
    other = _old(("suid_sgid", suid + [_f("/usr/bin/at", "SUID/SGID binary", "medium", "")]))
    for name, report in (("a", first), ("b", again), ("c", other)):
        (tmp_path / f"{name}.json").write_text(json.dumps(report))
    out = tmp_path / "out"
    assert _ingest(tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json", "--out", out) == 0
    printed = capsys.readouterr().out
    assert "2 reports accepted" in printed and "1 duplicate scans left out" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runs"][-1]["same_rows"] == 1 and manifest["duplicates_left_out"] == 1
    rejects = [json.loads(line) for line in (out / "ingest.rejects.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejects if r["kind"] == "duplicate"] == [
        f"the same rows as {tmp_path / 'a.json'} but for the scan's times"
    ]
    prompts = [json.loads(r["prompt"][-1]["content"]) for r in _rows(out)]
    assert sorted(p["summary"]["started_at"] for p in prompts) == ["2025-08-25T12:17:04Z"] * 2  # a and c
    # A later run remembers the kept scan through the manifest.
    (tmp_path / "d.json").write_text(json.dumps(_old(("suid_sgid", suid), started="2025-08-26T08:00:00Z")))
    assert _ingest(tmp_path / "d.json", "--out", out) == 0
    assert "1 duplicate scans left out" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["duplicates_left_out"] == 2


def test_the_real_0_1_0_scans_of_one_laptop(tmp_path, capsys):
    """The other real 0.1.0 outputs of sys-scan-graph's first commit: the same laptop scanned by successive builds."""
    scans = Path(__file__).parent / "fixtures" / "sys-scan-0.1.0-scans"
    assert _ingest(scans, "--out", tmp_path / "out") == 0
    printed = capsys.readouterr().out
    # ioc_report2 (aggregated by executable) repeats ioc_report (one finding per pid); module_summary3 repeats 2
    assert "6 inputs, 4 reports accepted" in printed and "2 duplicate scans left out" in printed
    assert "4 findings left out" in printed  # the firefox environment hits the user allowlisted, in both IOC scans
    rejects = [json.loads(line) for line in (tmp_path / "out" / "ingest.rejects.jsonl").read_text().splitlines()]
    assert sorted(Path(r["input"]).name for r in rejects if r["kind"] == "duplicate") == [
        "ioc_report2.json",
        "module_summary3.json",
    ]
    reports = [json.loads(r["prompt"][-1]["content"]) for r in _rows(tmp_path / "out")]
    ids = {f["id"] for p in reports for r in p["results"] for f in r["findings"]}
    assert not any("firefox" in i for i in ids)
    assert sorted(i.rsplit(":", 1)[1] for i in ids if "cpptools" in i) == ["70093", "70405", "72234"]
    assert {i for i in ids if "pkexec" in i or "pppd" in i} == {"/usr/bin/pkexec", "/usr/sbin/pppd"}
    summary = next(p for p in reports if p["meta"]["effective_config"]["modules_summary_only"] == "true")
    assert enrich_report(summary)["reductions"]["module_summary"]["module_count"] == 205
