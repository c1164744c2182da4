"""How close generated reports are to a real one, side by side, and what in them sys-scan cannot write.

`secml data fidelity REAL.json [GENERATED_DIR] [--hosts N]` compares the real report
with N generated hosts of its profile (same distribution, scanning account, command line and kind of
machine; built by `plan_matching`, or the matching reports of GENERATED_DIR): report keys, findings and
metadata keys per scanner, id/title forms, metadata value forms, severity mix, warnings and sort order.
Every finding, key and value form is also checked against the scanner version's spec
(`sysscan/spec_<version>.py`); anything the version never writes is listed as a defect and the command
exits 1.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

from secml_recipes.scan import scanner_version
from secml_recipes.scan.generate import generate_report, plan_matching

SEVERITIES = ("info", "low", "medium", "high", "critical", "error")


def value_form(value: str) -> str:
    """A coarse shape of a metadata value: what kind of text the scanner put there."""
    if value == "":
        return "empty"
    if value in ("true", "false"):
        return value
    if re.fullmatch(r"\d+", value):
        return "int"
    if re.fullmatch(r"[0-9a-f]{12,64}", value):
        return "hex"
    if value.startswith("/"):
        return "path"
    if re.fullmatch(r"[A-Za-z0-9_\-]+(,[A-Za-z0-9_\-]+)+", value):
        return "csv"
    if re.fullmatch(r"[A-Za-z0-9_.\-]+", value):
        return "word"
    return "text"


def report_profile(report: dict) -> tuple:
    """What makes two reports comparable: distribution, release, root or not, and the command-line flags."""
    meta = report.get("meta", {})
    ec = meta.get("effective_config", {})
    return (
        meta.get("os_id"),
        meta.get("os_version"),
        meta.get("euid") == "0",
        tuple(sorted((k, str(v)) for k, v in ec.items())),
    )


def report_stats(report: dict, spec) -> dict:
    """Per-report numbers the table compares."""
    per_scanner, keys, forms, values, sev = {}, defaultdict(set), defaultdict(set), defaultdict(set), Counter()
    sorted_ok = True
    for r in report.get("results", []):
        scanner = r.get("scanner")
        findings = r.get("findings", [])
        per_scanner[scanner] = per_scanner.get(scanner, 0) + len(findings)
        ids = [str(f.get("id")) for f in findings]
        sorted_ok &= ids == sorted(ids)
        for f in findings:
            sev[f.get("severity")] += 1
            form = spec.match_form(scanner, f)
            forms[scanner].add(form.name if form else f"UNKNOWN:{f.get('title')}")
            for k, v in (f.get("metadata") or {}).items():
                keys[scanner].add(k)
                values[(scanner, k)].add(value_form(str(v)))
    warnings = Counter(f"{w.get('scanner')}/{w.get('code')}" for w in report.get("collection_warnings", []))
    return {
        "per_scanner": per_scanner,
        "keys": keys,
        "forms": forms,
        "values": values,
        "severity": sev,
        "sorted": sorted_ok,
        "warnings": warnings,
        "structure": {
            "top": set(report),
            "meta": set(report.get("meta", {})),
            "summary": set(report.get("summary", {})),
            "result": set().union(*(set(r) for r in report.get("results", []))),
            "finding": set().union(*(set(f) for r in report.get("results", []) for f in r.get("findings", []))),
        },
    }


def _fmt_set(values) -> str:
    return ", ".join(sorted(values)) if values else "-"


def _mix(counter: Counter) -> str:
    total = sum(counter.values()) or 1

    def pct(n: int) -> str:
        share = 100 * n / total
        return "<0.1%" if 0 < share < 0.05 else f"{share:.1f}%"

    return " ".join(f"{s} {pct(counter[s])}" for s in SEVERITIES if counter.get(s))


def compare(real: dict, generated: list[dict], version: str = "5.0.0") -> tuple[str, list[str]]:
    """(markdown table, defects): the real report against the generated ones."""
    _, spec = scanner_version(version)
    rs = report_stats(real, spec)
    gs = [report_stats(g, spec) for g in generated]
    n = len(gs)
    lines = [
        f"# Fidelity: real `{real['meta'].get('hostname')}` ({real['meta'].get('os_pretty')}, sys-scan "
        f"{real['meta'].get('tool_version')}) vs {n} generated hosts of its profile",
        "",
    ]
    lines += [
        "## Report structure",
        "",
        "| part | real keys | generated keys (union) | only in generated |",
        "|---|---|---|---|",
    ]
    for part in ("top", "meta", "summary", "result", "finding"):
        union = set().union(*(g["structure"][part] for g in gs)) if gs else set()
        lines.append(
            f"| {part} | {len(rs['structure'][part])} | {len(union)} | {_fmt_set(union - rs['structure'][part])} |"
        )
    scanners = list(dict.fromkeys(list(rs["per_scanner"]) + [s for g in gs for s in g["per_scanner"]]))
    lines += [
        "",
        "## Findings per scanner",
        "",
        "| scanner | real | generated mean [min-max] | real forms | generated forms | real metadata keys | "
        "generated metadata keys |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in scanners:
        counts = [g["per_scanner"].get(s, 0) for g in gs] or [0]
        present = sum(1 for g in gs if s in g["per_scanner"])
        gen_forms = set().union(*(g["forms"][s] for g in gs)) if gs else set()
        gen_keys = set().union(*(g["keys"][s] for g in gs)) if gs else set()
        real_n = rs["per_scanner"].get(s, "absent")
        lines.append(
            f"| {s} | {real_n} | {statistics.mean(counts):.1f} [{min(counts)}-{max(counts)}]"
            f"{'' if present == n else f' (in {present}/{n})'} | {_fmt_set(rs['forms'][s])} | "
            f"{_fmt_set(gen_forms)} | {_fmt_set(rs['keys'][s])} | {_fmt_set(gen_keys)} |"
        )
    lines += ["", "## Metadata value forms", "", "| scanner.key | real | generated |", "|---|---|---|"]
    pairs = sorted(set(rs["values"]) | {k for g in gs for k in g["values"]})
    for pair in pairs:
        gen = set().union(*(g["values"].get(pair, set()) for g in gs)) if gs else set()
        lines.append(f"| {pair[0]}.{pair[1]} | {_fmt_set(rs['values'].get(pair, set()))} | {_fmt_set(gen)} |")
    gen_sev = sum((g["severity"] for g in gs), Counter())
    lines += [
        "",
        "## Severity mix",
        "",
        "| | findings/host | mix |",
        "|---|---|---|",
        f"| real | {sum(rs['severity'].values())} | {_mix(rs['severity'])} |",
        f"| generated | {sum(gen_sev.values()) / max(1, n):.1f} | {_mix(gen_sev)} |",
    ]
    codes = sorted(set(rs["warnings"]) | {c for g in gs for c in g["warnings"]})
    lines += ["", "## Collection warnings", "", "| scanner/code | real | generated mean [min-max] |", "|---|---|---|"]
    for code in codes:
        counts = [g["warnings"].get(code, 0) for g in gs] or [0]
        lines.append(
            f"| {code} | {rs['warnings'].get(code, 0)} | {statistics.mean(counts):.1f} [{min(counts)}-{max(counts)}] |"
        )
    canonical = real.get("meta", {}).get("effective_config", {}).get("canonical") == "true"
    lines += [
        "",
        "## Sort order",
        "",
        f"Findings sorted by id within each scanner (--canonical {'on' if canonical else 'off'}): real "
        f"{'yes' if rs['sorted'] else 'no'}, generated {sum(g['sorted'] for g in gs)}/{n}.",
    ]
    real_defects = spec.report_defects(real)
    gen_defects = Counter(d for g in generated for d in spec.report_defects(g))
    defects = [f"real: {d}" for d in real_defects] + [f"generated ({c}x): {d}" for d, c in gen_defects.most_common()]
    lines += ["", f"## Defects against the sys-scan {version} spec", ""]
    lines += [f"- {d}" for d in defects] or [
        f"None: every key, finding form, metadata key and value form above is one sys-scan {version} writes."
    ]
    return "\n".join(lines) + "\n", defects


def load_generated(folder: Path, real: dict, limit: int) -> tuple[list[dict], int]:
    """The reports in `folder` whose profile matches `real` (at most `limit`), and how many were read."""
    reports = []
    for path in sorted(folder.glob("*.json")):
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    want = report_profile(real)
    return [r for r in reports if report_profile(r) == want][:limit], len(reports)


def run(real_path: str, generated_dir: str | None, hosts: int, seed: int, version: str, out: str | None) -> int:
    try:
        real = json.loads(Path(real_path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        print(f"error: {real_path}: cannot read a JSON report: {err}", file=sys.stderr)
        return 2
    if not isinstance(real, dict) or "meta" not in real:
        print(f"error: {real_path}: not a sys-scan report (no meta)", file=sys.stderr)
        return 2
    if generated_dir:
        generated, read = load_generated(Path(generated_dir), real, hosts)
        print(f"{len(generated)} of {read} reports in {generated_dir} match the real report's profile")
        if not generated:
            print("error: no generated report of the real report's profile to compare", file=sys.stderr)
            return 2
    else:
        try:
            generated = [generate_report(p, version) for p in plan_matching(real, hosts, seed)]
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    table, defects = compare(real, generated, version)
    print(table)
    if out:
        Path(out).write_text(table)
    return 1 if defects else 0
