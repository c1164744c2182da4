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
    assert counts["network"] == 26 and counts["suid_sgid"] == 38 and counts["processes"] == 31
    # Only what 0.1.0 never recorded (effective_config, provenance) and the sockets 5.0.0 drops differ from 5.0.0.
    assert all(
        d.startswith(("network:", "effective_config keys differ", "provenance keys differ"))
        for d in spec.report_defects(report)
    )
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
