"""`massive_datasets.tar.gz`: build it, open it safely, and load its rows without losing one.

Layout inside the tarball (top folder `massive_datasets/`):
    specialist/{train,eval,test}-00000.jsonl   generalist/{train,eval,test}-00000.jsonl
    scans/{train,eval,test}-00000.jsonl  ({host_id, report}: the raw scans behind the episodes, from which
                                          evaluation rebuilds the same simulated tool environment)
    manifest.json (counts, sha256 per shard, generator version, seed, profile mix)   README.md (dataset card)
Hosts are assigned to splits by a hash of their host id, so no host appears in two splits.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from secml_recipes.atomic import write_atomic, write_text_atomic
from secml_recipes.corpus.episodes import build_episodes, diversity, plant_processes
from secml_recipes.judge.report import judge, judge_summary
from secml_recipes.scan.generate import GENERATOR_VERSION, generate_report, plan_hosts
from secml_recipes.tasks.split import specialist_examples
from secml_recipes.tasks.validate import ROW_CHECKS, json_error
from secml_recipes.teacher.enrich import FORMAT_VERSION

TASKS = ("specialist", "generalist")
SPLITS = ("train", "eval", "test")
MAX_MEMBER_BYTES = 2 * 1024**3
MAX_TOTAL_BYTES = 20 * 1024**3
MAX_MEMBERS = 10_000
# A generated corpus compresses about 20x; a zero-filled member (a gzip bomb) about 1000x.
MAX_COMPRESSION_RATIO = 200
CACHE_RECORD = ".complete"  # {tarball_sha256, files: {path: sha256}} of an extraction, re-checked on each use


class CorpusError(ValueError):
    """The corpus path is missing, corrupt or unsafe; the message says which and what to do."""


def split_for_host(host_id: str, eval_frac: float = 0.1, test_frac: float = 0.1) -> str:
    bucket = int(hashlib.sha256(host_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_frac else "eval" if bucket < test_frac + eval_frac else "train"


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in rows).encode()


def _evenly(items: list, n: int) -> list:
    if len(items) <= n:
        return list(items)
    if n <= 0:
        return []
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def keep_parts(parts: list[dict], n: int) -> list[dict]:
    """At most `n` of a report's parts, in report order: first the parts whose enrichment lists findings (evenly
    chosen when there are more than `n`), then parts without (evenly). Most parts of a split report hold only
    info-level entries (kernel modules): their enrichment lists no finding and repeats the host summary every part
    carries, while the parts with findings are the ones that teach verdicts, risk scores and actions."""

    def lists_findings(row: dict) -> bool:
        return bool(json.loads(row["completion"][0]["content"]).get("enriched_findings"))

    with_findings = [i for i, row in enumerate(parts) if lists_findings(row)]
    chosen = _evenly(with_findings, n)
    rest = [i for i in range(len(parts)) if i not in set(with_findings)]
    chosen += _evenly(rest, n - len(chosen))
    return [parts[i] for i in sorted(chosen)]


def build_corpus(
    out: str | os.PathLike,
    n_specialist: int,
    n_generalist: int,
    seed: int,
    max_prompt_chars: int = 12000,
    episodes_per_host: int = 3,
    parts_per_host: int = 4,
) -> dict:
    """Generate hosts until both tasks have their rows; write the tarball; return the manifest.

    A long report splits into many parts; at most `parts_per_host` of them are kept per host (`keep_parts`: those
    listing findings first), so that the corpus spans many hosts rather than a few."""
    rows: dict[str, dict[str, list]] = {t: {s: [] for s in SPLITS} for t in TASKS}
    scans: dict[str, list] = {s: [] for s in SPLITS}  # raw reports behind the episodes: the tool environment
    counts = dict.fromkeys(TASKS, 0)
    profiles: Counter = Counter()
    started = time.perf_counter()
    n_hosts = 0
    bar = tqdm(total=n_specialist + n_generalist, desc="building corpus", unit="row", disable=None)
    while counts["specialist"] < n_specialist or counts["generalist"] < n_generalist:
        plan = _plan(n_hosts, seed)
        n_hosts += 1
        report = generate_report(plan)
        split = split_for_host(plan.host_id)
        profiles[plan.profile] += 1
        if counts["specialist"] < n_specialist:
            parts = keep_parts(specialist_examples(report, plan.host_id, max_prompt_chars), parts_per_host)
            for row in parts[: n_specialist - counts["specialist"]]:
                rows["specialist"][split].append(row)
                counts["specialist"] += 1
                bar.update(1)
        if counts["generalist"] < n_generalist:
            scan = plant_processes(report, seed)  # the episodes' scan: see episodes.plant_processes
            scans[split].append({"host_id": plan.host_id, "report": scan})
            for i, ep in enumerate(build_episodes(scan, seed, episodes_per_host)):
                if counts["generalist"] >= n_generalist:
                    break
                rows["generalist"][split].append({"id": f"{plan.host_id}-g{i}", "host_id": plan.host_id, **ep})
                counts["generalist"] += 1
                bar.update(1)
    bar.close()
    elapsed = time.perf_counter() - started

    files: dict[str, bytes] = {}
    for task in TASKS:
        for split in SPLITS:
            files[f"{task}/{split}-00000.jsonl"] = _jsonl(rows[task][split])
    for split in SPLITS:
        files[f"scans/{split}-00000.jsonl"] = _jsonl(scans[split])
    manifest = {
        "name": "massive_datasets",
        "format_version": FORMAT_VERSION,
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "hosts": n_hosts,
        "max_prompt_chars": max_prompt_chars,
        "parts_per_host": parts_per_host,
        "part_selection": "findings first",
        "profile_mix": dict(sorted(profiles.items())),
        "counts": {
            **{t: {s: len(rows[t][s]) for s in SPLITS} for t in TASKS},
            "scans": {s: len(scans[s]) for s in SPLITS},
        },
        "episode_kinds": dict(sorted(Counter(r["kind"] for s in SPLITS for r in rows["generalist"][s]).items())),
        "episode_diversity": diversity([r for s in SPLITS for r in rows["generalist"][s]]),
        # the independent judge (judge) on every specialist reference, against the part it answers
        "judge": judge_summary(
            [
                judge(json.loads(r["prompt"][-1]["content"]), json.loads(r["completion"][0]["content"]))
                for s in SPLITS
                for r in rows["specialist"][s]
            ]
        ),
        "shards": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in files.items()
        },
        "build_seconds": round(elapsed, 2),
    }
    files["manifest.json"] = json.dumps(
        {k: v for k, v in manifest.items() if k != "build_seconds"}, indent=2, sort_keys=True
    ).encode()
    files["README.md"] = dataset_card(manifest).encode()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_tar(out, files)
    return manifest


def _plan(index: int, seed: int):
    # plan_hosts(n) is O(n); past a few dozen hosts, plan in blocks and cache the block.
    block = index // 1024
    cache = _plan.__dict__.setdefault("cache", {})
    if (seed, block) not in cache:
        cache.clear()
        cache[(seed, block)] = plan_hosts((block + 1) * 1024, seed)[block * 1024 :]
    return cache[(seed, block)][index - block * 1024]


def _write_tar(out: Path, files: dict[str, bytes]) -> None:
    """Reproducible tarball: fixed mtimes, owners and order, gzip without a timestamp; written atomically,
    so an interrupted build never leaves a truncated tarball in place."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(f"massive_datasets/{name}")
            info.size, info.mtime, info.mode, info.uid, info.gid = len(files[name]), 0, 0o644, 0, 0
            tar.addfile(info, io.BytesIO(files[name]))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, filename="") as gz:
        gz.write(buf.getvalue())
    write_atomic(out, packed.getvalue())


def dataset_card(manifest: dict) -> str:
    counts = manifest["counts"]
    lines = [
        "---",
        "license: apache-2.0",
        "task_categories: [text-generation]",
        "tags: [security, sys-scan, tool-use]",
        "---",
        "# massive_datasets: synthetic sys-scan corpus for secml-recipes",
        "",
        "Synthetic Linux host scans in the exact format of sys-scan 5.0.0, their reference enrichment, and agentic",
        "tool-use episodes. Built by `python -m secml_recipes.corpus build` (generator "
        f"{manifest['generator_version']}, seed {manifest['seed']}, {manifest['hosts']} hosts).",
        "",
        "| task | train | eval | test |",
        "|---|---|---|---|",
    ]
    for task, c in counts.items():
        if task == "scans":
            continue
        lines.append(f"| {task} | {c['train']} | {c['eval']} | {c['test']} |")
    lines += [
        "",
        f"Host profiles: {json.dumps(manifest['profile_mix'])}.",
        f"Episode kinds: {json.dumps(manifest['episode_kinds'])}.",
        f"Specialist completions are sys-scan-agent 7.0.0 `EnrichedOutput` JSON (corpus format "
        f"{manifest['format_version']}).",
        "",
        "Splits are by host: no host appears in two splits. Specialist rows are conversational prompt/completion",
        "(raw report -> enriched report JSON); generalist rows are `messages` + `tools` (JSON string) with a",
        "`reference` of the expected calls and key findings for evaluation. All data is synthetic: no real host",
        "data is included. sha256 of every shard is in manifest.json.",
    ]
    return "\n".join(lines) + "\n"


# -- opening and loading ----------------------------------------------------------------------


def _check_member(member: tarfile.TarInfo, total: int, budget: int) -> None:
    name = member.name
    if name.startswith("/") or ".." in Path(name).parts:
        raise CorpusError(f"unsafe path in tarball: {name!r} (absolute or '..')")
    if not (member.isfile() or member.isdir()):
        raise CorpusError(f"unsafe member in tarball: {name!r} is a link or device; only files and folders are allowed")
    if member.size > MAX_MEMBER_BYTES or total > MAX_TOTAL_BYTES:
        raise CorpusError(f"tarball member {name!r} exceeds the size limit ({MAX_MEMBER_BYTES} bytes per file)")
    if total > budget:
        raise CorpusError(
            f"tarball member {name!r} would unpack the archive past {MAX_COMPRESSION_RATIO}x its compressed size "
            f"({total} bytes from {budget // MAX_COMPRESSION_RATIO}): a compression bomb, refused"
        )


def _file_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != CACHE_RECORD
    }


def _unlisted_members(root: Path) -> list[str]:
    """Extracted files that the corpus' manifest does not list (manifest.json and README.md aside)."""
    manifest = root / "manifest.json"
    if not manifest.exists():
        return []
    try:
        listed = set(json.loads(manifest.read_text(encoding="utf-8")).get("shards", {}))
    except (ValueError, AttributeError):
        raise CorpusError(f"{manifest}: not a readable manifest; rebuild the corpus with `make data`") from None
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    return sorted(files - listed - {"manifest.json", "README.md", CACHE_RECORD})


def _cached(target: Path, digest: str, quiet: bool = False) -> bool:
    """Whether the extraction cache at `target` still holds exactly what the tarball `digest` unpacked to: every
    file re-hashed against the record written at extraction (an edited cached row is found, and re-extracted)."""
    record = target / CACHE_RECORD
    if not record.exists():
        return False
    try:
        saved = json.loads(record.read_text())
    except ValueError:
        return False
    if (
        not isinstance(saved, dict)
        or saved.get("tarball_sha256") != digest
        or saved.get("files") != _file_hashes(target)
    ):
        if quiet:
            return False
        print(
            f"[secml data] warning: the extraction cache {target} differs from its tarball; extracting it again",
            file=sys.stderr,
        )
        return False
    return True


def extract_corpus(tar_path: Path, cache_dir: Path | None = None) -> Path:
    """Safely extract the tarball into a cache folder keyed by its sha256; return the corpus root. Members are
    checked from their headers before any is unpacked (paths, types, sizes, compression ratio), and every file must
    be listed in the corpus' manifest.json; the cache is re-verified file by file against its record on each use."""
    full_digest = hashlib.sha256(tar_path.read_bytes()).hexdigest()
    digest = full_digest[:16]
    cache_dir = cache_dir or Path(os.environ.get("SECML_CACHE", Path(tempfile.gettempdir()) / "secml-corpus"))
    target = cache_dir / digest
    if _cached(target, full_digest):
        return _root(target)
    budget = max(tar_path.stat().st_size, 1) * MAX_COMPRESSION_RATIO
    staging = cache_dir / f".{digest}.tmp-{os.getpid()}"
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            members, total = [], 0
            for m in tar:  # headers one by one: a bomb is refused before its data is unpacked
                total += m.size
                _check_member(m, total, budget)
                members.append(m)
                if len(members) > MAX_MEMBERS:
                    raise CorpusError(f"{tar_path}: more than the {MAX_MEMBERS} members allowed")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            tar.extractall(staging, members=members, filter="data")
        unlisted = _unlisted_members(_root(staging))
        if unlisted:
            raise CorpusError(
                f"{tar_path}: members not listed in its manifest.json: {', '.join(unlisted[:5])}; a corpus holds only "
                "what its manifest lists (rebuild it with `make data`)"
            )
        (staging / CACHE_RECORD).write_text(json.dumps({"tarball_sha256": full_digest, "files": _file_hashes(staging)}))
        if not _cached(target, full_digest, quiet=True):  # another process may have finished the same extraction
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)  # the cache is whole or absent
    except (tarfile.TarError, EOFError, OSError) as err:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CorpusError(
                f"{tar_path}: the disk is full extracting it into {cache_dir}; free space (or set "
                "SECML_CACHE to a larger disk) and rerun"
            ) from None
        raise CorpusError(f"{tar_path}: not a readable .tar.gz ({err}); rebuild it with `make data`") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _root(target)


def _root(path: Path) -> Path:
    if (path / "manifest.json").exists():
        return path
    inner = path / "massive_datasets"
    if (inner / "manifest.json").exists() or inner.is_dir():
        return inner
    return path


def corpus_root(path: str | os.PathLike) -> Path:
    """The folder holding `specialist/` and `generalist/` for a tarball or a directory."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"dataset not found: {path} (build it with `make data`, or set dataset_path in the recipe)")
    if path.is_file():
        return extract_corpus(path)
    return _root(path)


def manifest_sha256(path: str | os.PathLike) -> str | None:
    """sha256 of the corpus' manifest.json (which holds every shard's sha256): the corpus' identity."""
    manifest = corpus_root(path) / "manifest.json"
    return hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.exists() else None


def corpus_record(path: str | os.PathLike) -> dict | None:
    """What a trained model must remember of its corpus: the manifest's sha256 and the part size
    (`max_prompt_chars`) its reports were split at, which the triage command must split at too. None when `path`
    is not a corpus with a manifest."""
    try:
        manifest = corpus_root(path) / "manifest.json"
    except (CorpusError, OSError):
        return None
    if not manifest.exists():
        return None
    data = json.loads(manifest.read_text())
    return {
        "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
        "max_prompt_chars": data.get("max_prompt_chars"),
    }


def check_manifest(root: Path) -> list[str]:
    """Shards whose sha256 differs from manifest.json (empty when there is no manifest). A corpus built in
    another format is refused outright: its rows must never be mixed with this version's."""
    manifest_path = root / "manifest.json"
    if not manifest_path.exists():
        return []
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CorpusError(
            f"{root}: corpus format {manifest.get('format_version', 1)}, this version reads format "
            f"{FORMAT_VERSION} (sys-scan-agent EnrichedOutput); rebuild it with `make data`"
        )
    bad = []
    for name, info in manifest.get("shards", {}).items():
        shard = root / name
        if not shard.exists() or hashlib.sha256(shard.read_bytes()).hexdigest() != info["sha256"]:
            bad.append(name)
    return bad


def _decoded(line) -> tuple[str, str | None]:
    """A shard line as text, or the reason it is not UTF-8 (nothing is replaced silently)."""
    if isinstance(line, str):
        return line, None
    try:
        return line.decode("utf-8"), None
    except UnicodeDecodeError as err:
        return line.decode("utf-8", errors="backslashreplace"), f"invalid UTF-8 at byte {err.start}: {err.reason}"


def checked_json_lines(lines, check):
    """(line number, raw line, row or None, reason or None) for every non-blank line (text or bytes): a line that
    is not UTF-8, not strict JSON (NaN and Infinity are refused) or whose row `check` refuses comes with the reason,
    so callers quarantine it instead of dropping it."""
    for line_no, raw in enumerate(lines, 1):
        line, reason = _decoded(raw)
        if not line.strip():
            continue
        row = None
        if reason is None:
            row, problem = json_error(line)
            reason = f"not JSON: {problem}" if problem else check(row)
        yield line_no, line, row, reason


def read_split(
    path: str | os.PathLike, task: str, split: str, rejects_dir: str | os.PathLike | None = None, verbose: bool = True
) -> tuple[list[dict], dict]:
    """Every valid row of `task`/`split`, and a report {shard: {"rows", "rejected", "verified"}}. Invalid rows go to
    `<rejects_dir>/<task>-<split>.rejects.jsonl` with shard, line and reason. A corpus without manifest.json loads
    with a warning (its shards cannot be checked), and its shards are reported unverified."""
    if task not in ROW_CHECKS:
        raise CorpusError(f"unknown task {task!r}; expected one of {sorted(ROW_CHECKS)}")
    root = corpus_root(path)
    bad = check_manifest(root)
    if bad:
        raise CorpusError(f"{root}: shards do not match manifest.json sha256: {', '.join(bad)}; the corpus is corrupt")
    verified = (root / "manifest.json").exists()
    shards = sorted((root / task).glob(f"{split}-*.jsonl"))
    if not shards:
        raise CorpusError(f"{root}: no {task}/{split}-*.jsonl shards; expected the layout of `make data`")
    if not verified:
        print(
            f"[secml data] warning: {root} has no manifest.json: {len(shards)} {task}/{split} shard(s) loaded "
            "without a sha256 check (rebuild with `make data`, or `data ingest` your own data)",
            file=sys.stderr,
        )
    check = ROW_CHECKS[task]
    rows, rejects, report = [], [], {}
    for shard in shards:
        n_ok = n_bad = 0
        with open(shard, "rb") as fh:
            for line_no, line, row, reason in checked_json_lines(fh, check):
                if reason is None:
                    rows.append(row)
                    n_ok += 1
                else:
                    rejects.append(
                        {
                            "shard": str(shard.relative_to(root)),
                            "line": line_no,
                            "reason": reason,
                            "raw": line.rstrip("\n"),
                        }
                    )
                    n_bad += 1
        report[str(shard.relative_to(root))] = {"rows": n_ok, "rejected": n_bad, "verified": verified}
    if rejects:
        rejects_dir = Path(rejects_dir or "rejects")
        rejects_dir.mkdir(parents=True, exist_ok=True)
        out = rejects_dir / f"{task}-{split}.rejects.jsonl"
        write_text_atomic(out, "".join(json.dumps(r) + "\n" for r in rejects))
    if verbose:
        total_bad = sum(v["rejected"] for v in report.values())
        print(
            f"[secml data] {task}/{split}: {len(rows)} rows loaded, {total_bad} rejected"
            + (f" -> {Path(rejects_dir) / f'{task}-{split}.rejects.jsonl'}" if total_bad else "")
            + ("" if verified else f", {len(shards)} shard(s) unverified (no manifest)")
        )
    return rows, report


def load_split_dataset(path, task: str, split: str, rejects_dir=None, max_rows: int | None = None):
    """The split as a `datasets.Dataset` in TRL's format (prompt/completion or messages/tools)."""
    # lazy: the torch stack loads only when a model is touched
    from datasets import Dataset

    rows, _ = read_split(path, task, split, rejects_dir)
    if max_rows is not None:
        rows = rows[:max_rows]
    columns = ("id", "prompt", "completion") if task == "specialist" else ("id", "messages", "tools")
    return Dataset.from_list([{k: r[k] for k in columns} for r in rows])


def read_scans(path, split: str) -> dict[str, dict]:
    """host_id -> raw report for a split (empty for corpora built without scans)."""
    root = corpus_root(path)
    out = {}
    for shard in sorted((root / "scans").glob(f"{split}-*.jsonl")):
        for line in shard.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                out[row["host_id"]] = row["report"]
    return out
