"""Real scans into specialist rows: every input sys-scan users actually have, nothing lost on the way.

Inputs (files, or folders searched recursively for *.json, *.ndjson and *.jsonl):
- a report as sys-scan writes it (`--canonical`, `--compact`, `--pretty`, any version 2.x-5.x),
- sys-scan's own `--ndjson` stream (one scan per `meta` line, see `sysscan/ndjson.py`),
- JSON lines of whole reports,
- reports of sys-scan 0.1.x, converted to the 5.0.0 shape (`sysscan/legacy.py`),
- analyst-labelled pairs: a raw report and the enriched report an analyst wrote for it (`X.json` beside
  `X.enriched.json`, or `--pair RAW ENRICHED`); the enriched side is checked by `validate.enriched_report_error`.

Every input is counted: empty files, unreadable or missing paths and bad lines are refused with a
one-line reason (kept with their text in `<out>/ingest.rejects.jsonl`). A run writes what it accepted
and exits 1 when it refused anything. Output never overwrites: each run adds new shards
(`specialist/<split>-NNNNN.jsonl`) and updates `manifest.json` (sha256 per shard, ingested report digests,
so the same report is not ingested twice); `--overwrite` starts the folder afresh. Shards and manifest
are written atomically: a full disk leaves the folder as it was.

Two scans that would give the same rows but for their times (e.g. one 0.1.x scan re-run a minute later, or
written by two 0.1.x builds whose forms convert alike) are one training example: the first is kept, each
later one is counted in the summary line and the run's manifest entry, and named in the rejects file with
the input it repeats.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from secml_recipes.atomic import write_atomic
from secml_recipes.corpus.tarball import split_for_host
from secml_recipes.scan import legacy, ndjson
from secml_recipes.tasks.prompts import compact
from secml_recipes.tasks.split import specialist_examples
from secml_recipes.tasks.validate import enriched_report_error, raw_report_error
from secml_recipes.teacher.enrich import FORMAT_VERSION

SUFFIXES = (".json", ".ndjson", ".jsonl")
ENRICHED_SUFFIX = ".enriched.json"


@dataclass
class Tally:
    inputs: int = 0
    reports: int = 0
    pairs: int = 0
    duplicates: int = 0  # the same report, already ingested
    same_rows: int = 0  # another scan whose rows equal a kept one's but for the scan's times
    refused: list = field(default_factory=list)  # {"input", "reason", "raw"?}
    left_out: list = field(default_factory=list)  # findings not carried over, {"input", "reason", "finding"?}
    dropped: list = field(default_factory=list)  # duplicate scans, {"input", "kind": "duplicate", "reason"}
    rows: dict = field(default_factory=dict)  # split -> [row]

    def refuse(self, where: str, reason: str, raw: str | None = None) -> None:
        entry = {"input": where, "kind": "refused", "reason": reason}
        if raw is not None:
            entry["raw"] = raw[:20000]
        self.refused.append(entry)


# -- finding the inputs -----------------------------------------------------------------------------------


def expand_inputs(paths: list[str], pairs: list[tuple[str, str]], tally: Tally) -> tuple[list[Path], list[tuple]]:
    """Report files and (raw, enriched) pairs behind the given paths; missing paths are refused here."""
    files: list[Path] = []
    found_pairs = [(Path(r), Path(e)) for r, e in pairs]
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
            if not candidates:
                tally.inputs += 1
                tally.refuse(raw, f"folder holds no {', '.join('*' + s for s in SUFFIXES)} file")
            files += candidates
        elif path.exists():
            files.append(path)
        else:
            tally.inputs += 1
            tally.refuse(raw, "no such file or directory")
    by_name = dict.fromkeys(files)
    plain = []
    for p in files:
        if p.name.endswith(ENRICHED_SUFFIX):
            partner = p.with_name(p.name[: -len(ENRICHED_SUFFIX)] + ".json")
            if partner in by_name:
                found_pairs.append((partner, p))
            else:
                tally.inputs += 1
                tally.refuse(str(p), f"labelled enriched report without its raw report {partner.name} beside it")
        else:
            plain.append(p)
    paired = {r for r, _ in found_pairs}
    return [p for p in plain if p not in paired], found_pairs


# -- reading reports -----------------------------------------------------------------------------------------


def _read_text(path: Path, tally: Tally) -> str | None:
    try:
        data = path.read_bytes()
    except OSError as err:
        tally.refuse(str(path), f"cannot read: {err.strerror or err}")
        return None
    if not data.strip():
        tally.refuse(str(path), "empty file")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        tally.refuse(str(path), f"not UTF-8 text (byte {err.start}): sys-scan writes UTF-8 JSON")
        return None


def _finite(text: str) -> object:
    """json.loads that refuses NaN and Infinity (not JSON, never written by sys-scan)."""

    def bad(token):
        raise ValueError(f"{token} is not a JSON number")

    return json.loads(text, parse_constant=bad)


def normalize_report(report) -> tuple[dict | None, str | None, list[dict]]:
    """(report in the 5.0.0 shape, None, findings left out) or (None, reason, []): older versions converted,
    the result checked against the scanner's schema."""
    left_out: list[dict] = []
    if legacy.is_legacy(report):
        converted, left_out = legacy.convert(report)
        if converted is None:
            reasons = sorted({x["reason"] for x in left_out})
            return None, "sys-scan 0.1.x report with nothing that maps to 5.0.0: " + "; ".join(reasons)[:300], []
        report = converted
    problem = raw_report_error(report)
    if problem:
        return None, problem, []
    return report, None, left_out


def read_inputs(path: Path, tally: Tally):
    """Yield (where, report) for every report in `path` (a report, JSON lines of reports, or an NDJSON
    stream); refused parts go to the tally with their line."""
    text = _read_text(path, tally)
    if text is None:
        return
    try:
        whole = _finite(text)
    except (json.JSONDecodeError, ValueError):
        whole = None
    if isinstance(whole, dict):
        yield str(path), whole
        return
    if whole is not None:
        tally.refuse(str(path), f"a JSON {type(whole).__name__}, not a report (one report per file, or one per line)")
        return
    stream_rows = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            obj = _finite(line)
        except (json.JSONDecodeError, ValueError) as err:
            tally.refuse(where, f"not JSON: {err}", line)
            continue
        if ndjson.is_ndjson_line(obj):
            problem = ndjson.line_error(obj)
            if problem:
                tally.refuse(where, problem, line)
            else:
                stream_rows.append((line_no, obj))
        elif isinstance(obj, dict) and "meta" in obj:
            yield where, obj
        else:
            tally.refuse(where, "neither a report nor a line of sys-scan's --ndjson stream", line)
    streams, orphans = ndjson.split_streams(stream_rows)
    for line_no, reason in orphans:
        tally.refuse(f"{path}:{line_no}", reason)
    for stream in streams:
        report, left_out = ndjson.stream_to_report(stream)
        for line_no, reason in left_out:
            tally.left_out.append({"input": f"{path}:{line_no}", "kind": "left_out", "reason": reason})
        yield f"{path}:{stream.first_line}", report


# -- rows ----------------------------------------------------------------------------------------------------


def report_digest(report: dict) -> str:
    return hashlib.sha256(json.dumps(report, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# What differs between two runs of the same scan: when it ran and how long each scanner took.
TIMING_KEYS = {
    "meta": ("timings", "normalized_time"),
    "summary": ("started_at", "finished_at", "duration_ms", "findings_per_second", "slowest_scanner"),
    "results": ("start_time", "end_time", "elapsed_ms"),
}


def rows_digest(report: dict, label: str = "") -> str:
    """Equal for two scans whose rows are the same but for the scan's times (and, for a labelled pair, the same
    analyst's report `label`)."""
    timeless = dict(report)
    for key in ("meta", "summary"):
        if isinstance(report.get(key), dict):
            timeless[key] = {k: v for k, v in report[key].items() if k not in TIMING_KEYS[key]}
    timeless["results"] = [
        {k: v for k, v in r.items() if k not in TIMING_KEYS["results"]} if isinstance(r, dict) else r
        for r in report.get("results", [])
    ]
    return hashlib.sha256((label + json.dumps(timeless, sort_keys=True, separators=(",", ":"))).encode()).hexdigest()


def host_id_of(report: dict) -> str:
    return hashlib.sha256(str(report["meta"].get("hostname", "")).encode()).hexdigest()[:16]


def report_rows(report: dict, digest: str, max_prompt_chars: int) -> list[dict]:
    """Specialist rows (the reference enricher's labels) for one report; ids unique per scan."""
    host_id = host_id_of(report)
    rows = specialist_examples(report, host_id, max_prompt_chars)
    for row in rows:
        row["id"] = f"{host_id}-{digest[:10]}-{row['id'].rsplit('-', 1)[-1]}"
    return rows


def labelled_rows(report: dict, enriched, digest: str, max_prompt_chars: int) -> tuple[list[dict], str | None]:
    """The analyst's enriched report as the completion of the report's prompt; the report must fit one
    prompt (an analyst labels a whole report, which cannot be cut into parts after the fact)."""
    problem = enriched_report_error(enriched)
    if problem:
        return [], f"enriched report is not in the enriched format: {problem}"
    rows = report_rows(report, digest, max_prompt_chars)
    if len(rows) != 1:
        return [], (
            f"the raw report needs {len(rows)} prompts at max_prompt_chars={max_prompt_chars}; a labelled "
            "pair must fit one (raise --max-prompt-chars)"
        )
    rows[0]["completion"] = [{"role": "assistant", "content": compact(enriched)}]
    rows[0]["id"] += "-labelled"
    return rows, None


# -- the output folder ----------------------------------------------------------------------------------------


class IngestFolder:
    """`<out>/specialist/<split>-NNNNN.jsonl` + `manifest.json` + `ingest.rejects.jsonl`, append-only."""

    def __init__(self, out: Path, overwrite: bool):
        self.out = out
        self.manifest_path = out / "manifest.json"
        self.notes: list[str] = []
        if overwrite and out.exists():
            for shard in (out / "specialist").glob("*.jsonl"):
                shard.unlink()
            for name in ("manifest.json", "ingest.rejects.jsonl"):
                (out / name).unlink(missing_ok=True)
        self.manifest = {"name": "ingested", "format_version": FORMAT_VERSION, "shards": {}, "reports": [], "runs": []}
        if self.manifest_path.exists():
            self.manifest = json.loads(self.manifest_path.read_text())
            if self.manifest.get("format_version") != FORMAT_VERSION:
                raise ValueError(
                    f"{self.manifest_path}: ingest folder in format {self.manifest.get('format_version', 1)}, this "
                    f"version writes format {FORMAT_VERSION}; ingest into a new --out or pass --overwrite"
                )
        elif out.exists() and any(out.iterdir()) and not (out / "specialist").exists():
            raise ValueError(
                f"{out} exists and is not an ingest folder (no manifest.json, no specialist/); choose another --out"
            )
        self._adopt_orphans()

    def _adopt_orphans(self) -> None:
        """Shards on disk that the manifest does not list (a run stopped between the two renames)."""
        for shard in sorted((self.out / "specialist").glob("*.jsonl")) if (self.out / "specialist").exists() else []:
            rel = f"specialist/{shard.name}"
            if rel not in self.manifest["shards"]:
                data = shard.read_bytes()
                self.manifest["shards"][rel] = {
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "bytes": len(data),
                    "rows": data.count(b"\n"),
                }
                self.notes.append(f"adopted {rel}: on disk but not in manifest.json")

    def known(self, digest: str) -> bool:
        return digest in set(self.manifest["reports"])

    def known_rows(self, digest: str) -> bool:
        return digest in set(self.manifest.get("rows_digests", []))

    def next_shard(self, split: str) -> str:
        taken = [
            int(name.rsplit("-", 1)[1].split(".")[0])
            for name in self.manifest["shards"]
            if name.startswith(f"specialist/{split}-")
        ]
        return f"specialist/{split}-{max(taken, default=-1) + 1:05d}.jsonl"

    def commit(
        self, rows_by_split: dict, digests: list[str], rows_digests: list[str], rejects: list[dict], run_note: dict
    ) -> list[str]:
        """Write the new shards, the rejects and then the manifest, each atomically; return shard names."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "specialist").mkdir(exist_ok=True)
        written = []
        for split, rows in sorted(rows_by_split.items()):
            if not rows:
                continue
            name = self.next_shard(split)
            data = "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in rows).encode()
            write_atomic(self.out / name, data)
            self.manifest["shards"][name] = {
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
                "rows": len(rows),
            }
            written.append(name)
        if rejects:
            path = self.out / "ingest.rejects.jsonl"
            old = path.read_bytes() if path.exists() else b""
            write_atomic(path, old + "".join(json.dumps(r) + "\n" for r in rejects).encode())
        self.manifest["reports"] = sorted(set(self.manifest["reports"]) | set(digests))
        self.manifest["rows_digests"] = sorted(set(self.manifest.get("rows_digests", [])) | set(rows_digests))
        self.manifest["runs"].append(run_note)
        self.manifest["duplicates_left_out"] = sum(
            run.get("duplicates", 0) + run.get("same_rows", 0) for run in self.manifest["runs"]
        )
        counts: dict[str, int] = {}
        for name, info in self.manifest["shards"].items():
            split = name.split("/")[1].rsplit("-", 1)[0]
            counts[split] = counts.get(split, 0) + info.get("rows", 0)
        self.manifest["counts"] = {"specialist": dict(sorted(counts.items()))}
        write_atomic(self.manifest_path, json.dumps(self.manifest, indent=2, sort_keys=True).encode())
        return written


# -- the command ---------------------------------------------------------------------------------------------


def run(
    paths: list[str],
    out: str,
    split: str = "train",
    pairs: list[tuple[str, str]] | None = None,
    overwrite: bool = False,
    max_prompt_chars: int = 12000,
) -> int:
    """Ingest `paths` (and `pairs`) into `out`; print one line per refusal and a summary; return the exit code
    (0 all accepted, 1 something refused, 2 nothing could be written)."""
    tally = Tally()
    try:
        folder = IngestFolder(Path(out), overwrite)
    except (ValueError, OSError, json.JSONDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    files, found_pairs = expand_inputs(list(paths), list(pairs or []), tally)
    seen: set[str] = set()
    digests: list[str] = []
    kept_rows: dict[str, str] = {}  # rows digest -> the input kept

    def accept(where: str, report: dict, rows_for, label: str = "") -> None:
        normalized, problem, left_out = normalize_report(report)
        if problem:
            tally.refuse(where, problem)
            return
        for item in left_out:
            tally.left_out.append({"input": where, "kind": "left_out", **item})
        digest, same = report_digest(normalized), rows_digest(normalized, label)
        if digest in seen or folder.known(digest):
            tally.duplicates += 1
            tally.dropped.append({"input": where, "kind": "duplicate", "reason": "the same report, already ingested"})
            return
        if same in kept_rows or folder.known_rows(same):
            tally.same_rows += 1
            first = kept_rows.get(same, "a scan of an earlier run (manifest.json)")
            tally.dropped.append(
                {"input": where, "kind": "duplicate", "reason": f"the same rows as {first} but for the scan's times"}
            )
            return
        rows, problem = rows_for(normalized, digest)
        if problem:
            tally.refuse(where, problem)
            return
        seen.add(digest)
        digests.append(digest)
        kept_rows[same] = where
        target = split_for_host(host_id_of(normalized)) if split == "auto" else split
        tally.rows.setdefault(target, []).extend(rows)
        tally.reports += 1

    for path in files:
        tally.inputs += 1
        for where, report in read_inputs(path, tally):
            accept(where, report, lambda r, d: (report_rows(r, d, max_prompt_chars), None))
    for raw_path, enriched_path in found_pairs:
        tally.inputs += 1
        where = f"{raw_path} + {enriched_path}"
        missing = [p for p in (raw_path, enriched_path) if not p.exists()]
        if missing:
            tally.refuse(where, f"{missing[0]}: no such file or directory")
            continue
        raw_reports = list(read_inputs(raw_path, tally))
        text = _read_text(enriched_path, tally)
        if text is None or not raw_reports:
            continue  # the reason is already in the tally
        if len(raw_reports) > 1:
            tally.refuse(where, f"the raw side holds {len(raw_reports)} scans; a pair is one scan")
            continue
        try:
            enriched = _finite(text)
        except (json.JSONDecodeError, ValueError) as err:
            tally.refuse(str(enriched_path), f"not JSON: {err}")
            continue
        before = tally.reports
        accept(
            where,
            raw_reports[0][1],
            lambda r, d, label=enriched: labelled_rows(r, label, d, max_prompt_chars),
            label=report_digest(enriched),
        )
        tally.pairs += tally.reports - before
    n_rows = sum(len(v) for v in tally.rows.values())
    rejects = tally.refused + tally.left_out + tally.dropped
    run_note = {
        "inputs": tally.inputs,
        "reports": tally.reports,
        "pairs": tally.pairs,
        "rows": n_rows,
        "refused": len(tally.refused),
        "left_out_findings": len(tally.left_out),
        "duplicates": tally.duplicates,
        "same_rows": tally.same_rows,
    }
    try:
        written = folder.commit(tally.rows, digests, list(kept_rows), rejects, run_note)
    except OSError as err:
        print(
            f"error: writing {out} failed: {err.strerror or err}; nothing from this run was written "
            "(shards already there are untouched)",
            file=sys.stderr,
        )
        return 2
    for note in folder.notes:
        print(f"note: {note}")
    for r in tally.refused:
        print(f"  refused {r['input']}: {r['reason']}")
    per_split = ", ".join(f"{s} {len(v)}" for s, v in sorted(tally.rows.items())) or "none"
    print(
        f"ingest: {tally.inputs} inputs, {tally.reports} reports accepted ({tally.pairs} labelled pairs) -> "
        f"{n_rows} specialist rows ({per_split}) in {', '.join(written) or 'no new shard'}; "
        f"{len(tally.refused)} refused, {tally.duplicates} already ingested, "
        f"{tally.same_rows} duplicate scans left out (same rows as one kept), "
        f"{len(tally.left_out)} findings left out"
        + (f"; reasons in {Path(out) / 'ingest.rejects.jsonl'}" if rejects else "")
    )
    return 1 if tally.refused else 0
