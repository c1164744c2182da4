"""Hostile rows and archives: every bad row is quarantined with a reason whatever its shape, nothing is replaced
silently, and an archive holds only what its manifest lists, within size and compression caps."""

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from secml_recipes.corpus.tarball import CorpusError, checked_json_lines, extract_corpus, read_split
from secml_recipes.tasks.validate import ROW_CHECKS, generalist_row_error, specialist_row_error


@pytest.fixture(scope="module")
def good_rows(small_corpus):
    rows = {}
    for task in ("specialist", "generalist"):
        rows[task] = read_split(small_corpus, task, "train", verbose=False)[0][0]
    return rows


def deep(n):
    return "[" * n + "]" * n


HOSTILE = {
    "specialist": [
        (lambda r: dict(r, completion=["x"]), "completion[0]: a message is a JSON object"),
        (lambda r: dict(r, completion="x"), "completion must be exactly one assistant message"),
        (lambda r: dict(r, prompt=[{"role": "user", "content": ["x"]}]), "prompt[0]: content must be a string"),
        (lambda r: dict(r, prompt=[7]), "prompt must be a non-empty list"),
        (lambda r: dict(r, id=json.loads(deep(200))), "nested more than 64 levels deep"),
        (lambda r: dict(r, prompt=[{"role": "user", "content": '{"meta": NaN}'}]), "NaN is not JSON"),
    ],
    "generalist": [
        (lambda r: dict(r, tools=["x"]), "tools[0]: (root): 'x' is not of type 'object'"),
        (lambda r: dict(r, tools='["x"]'), "tools[0]: (root): 'x' is not of type 'object'"),
        (lambda r: dict(r, tools=7), "tools must be a list of function tools"),
        (
            lambda r: dict(r, tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": 5}}}]),
            "parameters is not a JSON schema",
        ),
        (lambda r: dict(r, messages=["x", "y"]), "messages[0]: a message is a JSON object"),
        (
            lambda r: dict(
                r,
                messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "tool_calls": ["x"]}],
            ),
            "tool call is an object",
        ),
        (
            lambda r: dict(
                r, messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "tool_calls": "x"}]
            ),
            "tool_calls must be a list",
        ),
    ],
}
CASES = [(task, i) for task, cases in HOSTILE.items() for i in range(len(cases))]


@pytest.mark.parametrize("task,i", CASES, ids=[f"{t}-{i}" for t, i in CASES])
def test_every_shape_gets_a_reason(good_rows, task, i):
    assert ROW_CHECKS[task](good_rows[task]) is None
    change, reason = HOSTILE[task][i]
    problem = ROW_CHECKS[task](change(good_rows[task]))
    assert problem is not None and reason in problem, problem


@pytest.mark.parametrize("check", [specialist_row_error, generalist_row_error])
@pytest.mark.parametrize("value", [None, 3, "x", [], ["x"], {"completion": ["x"]}, [[[[]]]]])
def test_no_value_crashes_a_check(check, value):
    assert isinstance(check(value), str)


def test_lines_nested_ten_thousand_deep_or_not_strict_json_are_quarantined():
    lines = [deep(10_000).encode(), b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1}\xff\xfe', b"", b"   "]
    out = list(checked_json_lines(lines, lambda row: None))
    assert [o[0] for o in out] == [1, 2, 3, 4]  # blank lines are not rows
    reasons = [o[3] for o in out]
    assert (
        "nested too deeply" in reasons[0] and "NaN is not JSON" in reasons[1] and "Infinity is not JSON" in reasons[2]
    )
    assert reasons[3].startswith("invalid UTF-8 at byte 8") and out[3][1] == '{"a": 1}\\xff\\xfe'


def test_invalid_utf8_rows_are_rejected_not_replaced(good_rows, tmp_path):
    folder = tmp_path / "corpus" / "specialist"
    folder.mkdir(parents=True)
    good = json.dumps(good_rows["specialist"]).encode()
    (folder / "train-00000.jsonl").write_bytes(good + b"\n" + good.replace(b'"id"', b'"\xc3\x28id"', 1) + b"\n")
    rows, report = read_split(
        tmp_path / "corpus", "specialist", "train", rejects_dir=tmp_path / "rejects", verbose=False
    )
    assert len(rows) == 1 and report["specialist/train-00000.jsonl"]["rejected"] == 1
    reject = json.loads((tmp_path / "rejects" / "specialist-train.rejects.jsonl").read_text())
    assert reject["reason"].startswith("invalid UTF-8") and "\\xc3(id" in reject["raw"]
    assert "\ufffd" not in json.dumps(rows)


def _tarball(path, files, manifest_files=None):
    """A corpus tarball; the manifest lists `manifest_files` (default: every file) with their sha256."""
    listed = files if manifest_files is None else {k: files[k] for k in manifest_files}
    manifest = {
        "format_version": 2,
        "shards": {k: {"sha256": hashlib.sha256(v).hexdigest()} for k, v in listed.items()},
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {**files, "manifest.json": json.dumps(manifest).encode()}.items():
            info = tarfile.TarInfo(f"massive_datasets/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_member_missing_from_the_manifest_is_refused(tmp_path, good_rows):
    from secml_recipes.teacher.enrich import FORMAT_VERSION

    shard = (json.dumps(good_rows["specialist"]) + "\n").encode()
    files = {"specialist/train-00000.jsonl": shard, "specialist/extra.jsonl": shard}
    path = _tarball(tmp_path / "c.tar.gz", files, ["specialist/train-00000.jsonl"])
    with pytest.raises(CorpusError, match="members not listed in its manifest.json: specialist/extra.jsonl"):
        extract_corpus(path, tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())  # nothing half-extracted is left to be trusted
    assert FORMAT_VERSION  # the real format is checked when rows are read (check_manifest)


def test_a_compression_bomb_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.tar.gz"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("massive_datasets/specialist/train-00000.jsonl")
        info.size = 64 * 1024 * 1024
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    path.write_bytes(gzip.compress(raw.getvalue(), compresslevel=1))
    with pytest.raises(CorpusError, match="compression bomb"):
        extract_corpus(path, tmp_path / "cache")


def test_the_extraction_cache_is_reverified_against_the_tarball(small_corpus, tmp_path, capsys):
    root = extract_corpus(small_corpus, tmp_path / "cache")
    shard = root / "specialist" / "train-00000.jsonl"
    original = shard.read_bytes()
    # Edit a cached row and its manifest entry together: only the record of the extraction can tell.
    shard.write_bytes(original.replace(b'"host_id"', b'"host_id_"', 1))
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["shards"]["specialist/train-00000.jsonl"]["sha256"] = hashlib.sha256(shard.read_bytes()).hexdigest()
    (root / "manifest.json").write_text(json.dumps(manifest))
    again = extract_corpus(small_corpus, tmp_path / "cache")
    assert "differs from its tarball; extracting it again" in capsys.readouterr().err
    assert (again / "specialist" / "train-00000.jsonl").read_bytes() == original


def test_a_folder_without_manifest_loads_with_a_warning_and_is_counted(good_rows, tmp_path, capsys):
    folder = tmp_path / "corpus" / "generalist"
    folder.mkdir(parents=True)
    (folder / "train-00000.jsonl").write_text(json.dumps(good_rows["generalist"]) + "\n")
    rows, report = read_split(tmp_path / "corpus", "generalist", "train", rejects_dir=tmp_path / "r")
    out = capsys.readouterr()
    assert len(rows) == 1 and report["generalist/train-00000.jsonl"]["verified"] is False
    assert "has no manifest.json" in out.err and "1 shard(s) unverified (no manifest)" in out.out


def test_a_full_disk_while_extracting_is_one_line(small_corpus, tmp_path, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "extractall", full)
    with pytest.raises(CorpusError, match="the disk is full extracting it into"):
        extract_corpus(small_corpus, tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())  # no half extraction left to be trusted
