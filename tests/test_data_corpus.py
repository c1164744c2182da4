"""The tarball: built reproducibly, split by host, loaded safely, bad rows quarantined and counted."""

import io
import json
import tarfile

import pytest

from secml_recipes.corpus.__main__ import main as data_cli
from secml_recipes.corpus.tarball import CorpusError, build_corpus, corpus_root, load_split_dataset, read_split


def test_manifest_counts_hashes_and_card(small_corpus):
    root = corpus_root(small_corpus)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["generator_version"]
    assert sum(manifest["counts"]["specialist"].values()) == 24
    assert sum(manifest["counts"]["generalist"].values()) == 24
    assert set(manifest["shards"]) == {
        f"{t}/{s}-00000.jsonl" for t in ("specialist", "generalist", "scans") for s in ("train", "eval", "test")
    }
    assert "massive_datasets" in (root / "README.md").read_text()
    judged = manifest["judge"]  # the independent judge on every specialist reference
    assert judged["outputs"] == 24 and judged["actions"] >= judged["harmful_actions"] >= 0
    assert set(judged["kinds"]) >= {"breaks_login_or_sudo", "destroys_evidence", "clean_host_critical"}


def test_scans_behind_every_episode_are_in_the_corpus(small_corpus):
    from secml_recipes.corpus.tarball import read_scans
    from secml_recipes.tasks.tools import ScanEnvironment, tool_result_text

    for split in ("train", "test"):
        scans = read_scans(small_corpus, split)
        rows, _ = read_split(small_corpus, "generalist", split, verbose=False)
        for row in rows:
            env = ScanEnvironment(scans[row["host_id"]])
            calls = {tc["id"]: tc["function"] for m in row["messages"] for tc in (m.get("tool_calls") or [])}
            for m in row["messages"]:
                if m["role"] == "tool":
                    fn = calls[m["tool_call_id"]]
                    assert m["content"] == tool_result_text(env.call(fn["name"], json.loads(fn["arguments"])))


def test_no_host_in_two_splits(small_corpus):
    for task in ("specialist", "generalist"):
        hosts = {}
        for split in ("train", "eval", "test"):
            rows, _ = read_split(small_corpus, task, split, verbose=False)
            hosts[split] = {r["host_id"] for r in rows}
        assert not (hosts["train"] & hosts["eval"]) and not (hosts["train"] & hosts["test"])
        assert not (hosts["eval"] & hosts["test"])


def test_build_is_reproducible(tmp_path):
    a, b = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    build_corpus(a, 6, 6, seed=5, max_prompt_chars=5000)
    build_corpus(b, 6, 6, seed=5, max_prompt_chars=5000)
    assert a.read_bytes() == b.read_bytes()


def test_loads_through_datasets_in_trl_format(small_corpus):
    spec = load_split_dataset(small_corpus, "specialist", "train")
    assert set(spec.column_names) == {"id", "prompt", "completion"} and len(spec) > 0
    gen = load_split_dataset(small_corpus, "generalist", "train")
    assert set(gen.column_names) == {"id", "messages", "tools"} and isinstance(gen[0]["tools"], str)


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def test_missing_and_corrupt_tarballs_are_clear_errors(tmp_path):
    with pytest.raises(CorpusError, match="dataset not found"):
        corpus_root(tmp_path / "nope.tar.gz")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"this is not gzip")
    with pytest.raises(CorpusError, match="not a readable"):
        corpus_root(bad)


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "device"])
def test_unsafe_members_are_refused(tmp_path, kind):
    info = tarfile.TarInfo(
        {"absolute": "/etc/evil", "dotdot": "massive_datasets/../../evil"}.get(kind, "massive_datasets/x")
    )
    data = b"x"
    if kind == "symlink":
        info.type, info.linkname, data = tarfile.SYMTYPE, "/etc/passwd", None
    elif kind == "device":
        info.type, data = tarfile.CHRTYPE, None
    else:
        info.size = 1
    path = _tar(tmp_path / f"{kind}.tar.gz", [(info, data)])
    with pytest.raises(CorpusError, match="unsafe"):
        corpus_root(path)


def test_bad_rows_are_quarantined_and_counted(small_corpus, tmp_path, capsys):
    root = corpus_root(small_corpus)
    folder = tmp_path / "corpus"
    (folder / "specialist").mkdir(parents=True)
    good = (root / "specialist" / "train-00000.jsonl").read_text().splitlines()
    row = json.loads(good[0])
    broken_completion = dict(row, completion=[{"role": "assistant", "content": "{not json"}])
    wrong_roles = dict(row, prompt=[{"role": "assistant", "content": "x"}])
    lines = good[:2] + ["{truncated", json.dumps(broken_completion), json.dumps(wrong_roles)]
    (folder / "specialist" / "train-00000.jsonl").write_text("\n".join(lines) + "\n")
    rows, report = read_split(folder, "specialist", "train", rejects_dir=tmp_path / "rejects")
    assert len(rows) == 2 and report["specialist/train-00000.jsonl"] == {"rows": 2, "rejected": 3, "verified": False}
    rejects = [
        json.loads(line) for line in (tmp_path / "rejects" / "specialist-train.rejects.jsonl").read_text().splitlines()
    ]
    assert [r["line"] for r in rejects] == [3, 4, 5]
    assert "not JSON" in rejects[0]["reason"] and "completion is not JSON" in rejects[1]["reason"]
    assert "prompt roles" in rejects[2]["reason"] and rejects[0]["raw"] == "{truncated"
    assert "2 rows loaded, 3 rejected" in capsys.readouterr().out


def test_tampered_shard_fails_the_manifest_check(small_corpus, tmp_path):
    import shutil

    folder = tmp_path / "c"
    shutil.copytree(corpus_root(small_corpus), folder)
    shard = folder / "generalist" / "train-00000.jsonl"
    shard.write_text(shard.read_text() + "\n")
    with pytest.raises(CorpusError, match="do not match manifest"):
        read_split(folder, "generalist", "train")


def test_a_corpus_in_the_old_format_is_a_one_line_rebuild_error(small_corpus, tmp_path):
    import shutil

    folder = tmp_path / "old"
    shutil.copytree(corpus_root(small_corpus), folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["format_version"]  # corpora built before the sys-scan-agent format had none
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        CorpusError, match=r"corpus format 1, this version reads format 2 .*rebuild it with `make data`"
    ):
        read_split(folder, "specialist", "train")
    assert data_cli(["validate", str(folder)]) == 2


def test_manifest_records_the_format_and_the_episode_diversity(small_corpus, capsys):
    manifest = json.loads((corpus_root(small_corpus) / "manifest.json").read_text())
    assert manifest["format_version"] == 2
    assert manifest["episode_diversity"]["episodes"] == 24
    assert manifest["episode_diversity"]["distinct_call_sequences"] >= 5
    assert manifest["episode_diversity"]["result_dependent_share"] > 0  # measured per episode while building


def test_ingest_real_reports_and_refuse_broken_ones(tmp_path, capsys):
    from secml_recipes.scan.fixtures import real_report_paths

    real = real_report_paths()[0]
    old = json.loads(real.read_text())
    del old["meta"]["json_schema_version"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    jsonl = tmp_path / "many.jsonl"
    jsonl.write_text(json.dumps(json.loads(real.read_text())) + "\n" + "{broken\n")
    assert data_cli(["ingest", str(real), str(tmp_path / "old.json"), "--out", str(tmp_path / "out")]) == 1
    out = capsys.readouterr().out
    assert "1 refused" in out and "older than schema v2" in out
    rows, _ = read_split(tmp_path / "out", "specialist", "train", verbose=False)
    assert rows and all(r["host_id"] == rows[0]["host_id"] for r in rows)
    assert data_cli(["ingest", str(jsonl), "--out", str(tmp_path / "nd")]) == 1
    assert "1 refused" in capsys.readouterr().out


def test_validate_cli_exit_codes(small_corpus, tmp_path):
    assert data_cli(["validate", str(small_corpus), "--rejects-dir", str(tmp_path)]) == 0
    assert data_cli(["validate", str(tmp_path / "missing")]) == 2


def test_generate_cli_writes_valid_reports(tmp_path):
    assert data_cli(["generate", "--hosts", "3", "--seed", "1", "--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*.json"))) == 3


def test_a_hosts_parts_that_list_findings_are_kept_first():
    """Of a report's many parts the corpus keeps those whose enrichment lists findings, then evenly the rest."""
    from secml_recipes.corpus.tarball import keep_parts

    def part(i, findings):
        enriched = [{"id": f"f{i}"}] if findings else []
        return {"id": f"h-s{i}", "completion": [{"content": json.dumps({"enriched_findings": enriched})}]}

    parts = [part(i, i in (3, 17)) for i in range(20)]
    kept = [p["id"] for p in keep_parts(parts, 4)]
    assert kept == ["h-s0", "h-s3", "h-s10", "h-s17"]  # both finding parts, two of the rest spread out, in order
    many = [part(i, True) for i in range(9)]
    assert [p["id"] for p in keep_parts(many, 3)] == ["h-s0", "h-s3", "h-s6"]
    assert keep_parts(parts[:2], 4) == parts[:2]


def test_the_corpus_keeps_the_parts_with_findings(small_corpus):
    rows, _ = read_split(small_corpus, "specialist", "train", verbose=False)
    listing = [r for r in rows if json.loads(r["completion"][0]["content"])["enriched_findings"]]
    assert len(listing) >= len(rows) // 2
    manifest = json.loads((corpus_root(small_corpus) / "manifest.json").read_text())
    assert manifest["part_selection"] == "findings first"
