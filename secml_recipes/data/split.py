"""Specialist examples: prompt = raw report (compact JSON), completion = its enriched report.

Reports too long for the recipe's max length are split into parts. Strategy: the report is cut into
units in scanner-group order (runtime: processes, network, ioc, ebpf_exec_trace; kernel: kernel_params,
kernel_hardening, modules; filesystem: world_writable, suid_sgid, mounts, integrity, yara; policy: mac,
systemd_units, auditd, containers), a scanner whose findings alone are too long is cut into chunks of
findings, and units are packed greedily into parts under `max_prompt_chars`. Every part repeats the
host `meta` (with `meta.secml_part = "i/n"`), `summary` and `summary_extension`, and carries only its
scanners' warnings and errors. The groups keep related scanners together, so the correlations the
enricher draws (IOC + socket, SUID + world-writable, module + lockdown) survive. Each part is enriched
by the same function as a whole report, and per-finding enrichment depends only on the finding, so a
finding is enriched identically in every part and in the whole.
"""

from __future__ import annotations

import json

from .enrich import enrich_report

SYSTEM_PROMPT = (
    "You are secml, a security analyst. Turn the raw sys-scan report in the user message into the enriched "
    "security report: categories, risk scores, correlations, ATT&CK techniques, actions and a summary, as JSON."
)
SCANNER_GROUPS = [
    ["processes", "network", "ioc", "ebpf_exec_trace"],
    ["kernel_params", "kernel_hardening", "modules"],
    ["world_writable", "suid_sgid", "mounts", "integrity", "yara"],
    ["mac", "systemd_units", "auditd", "containers"],
]


def compact(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _group_order(scanner: str) -> int:
    for i, group in enumerate(SCANNER_GROUPS):
        if scanner in group:
            return i * 100 + group.index(scanner)
    return 10_000


def _units(report: dict, budget: int) -> list[tuple[str, dict | None, list, list]]:
    """(scanner, result-or-chunk, warnings, errors) units in group order, each under `budget` chars if possible."""
    warnings_by = {}
    for w in report.get("collection_warnings", []):
        warnings_by.setdefault(w.get("scanner"), []).append(w)
    errors_by = {}
    for e in report.get("scanner_errors", []):
        errors_by.setdefault(e.get("scanner"), []).append(e)
    units = []
    scanners = sorted({r["scanner"] for r in report.get("results", [])} | set(warnings_by) | set(errors_by),
                      key=_group_order)
    results = {r["scanner"]: r for r in report.get("results", [])}
    for scanner in scanners:
        result, warns, errs = results.get(scanner), warnings_by.get(scanner, []), errors_by.get(scanner, [])
        if result is None or len(compact(result)) + len(compact(warns)) <= budget:
            units.append((scanner, result, warns, errs))
            continue
        findings, chunk, chunks = result["findings"], [], []
        for f in findings:
            if chunk and len(compact(chunk + [f])) > budget // 2:
                chunks.append(chunk)
                chunk = []
            chunk.append(f)
        chunks.append(chunk)
        for i, part in enumerate(chunks):
            piece = dict(result, findings=part, finding_count=len(part))
            units.append((scanner, piece, warns if i == 0 else [], errs if i == 0 else []))
    return units


def split_report(report: dict, max_prompt_chars: int) -> list[dict]:
    """The report itself when it fits, else parts as described in the module docstring."""
    if len(compact(report)) <= max_prompt_chars:
        return [report]
    shell = {k: v for k, v in report.items() if k not in ("results", "collection_warnings", "scanner_errors")}
    budget = max(1000, max_prompt_chars - len(compact(shell)) - 200)
    parts, current, size = [], [], 0
    for unit in _units(report, budget):
        unit_size = len(compact(unit[1] or {})) + len(compact(unit[2])) + len(compact(unit[3]))
        if current and size + unit_size > budget:
            parts.append(current)
            current, size = [], 0
        current.append(unit)
        size += unit_size
    if current:
        parts.append(current)
    out = []
    for i, units in enumerate(parts):
        part = json.loads(compact(shell))
        part["meta"]["secml_part"] = f"{i + 1}/{len(parts)}"
        part["results"] = [u[1] for u in units if u[1] is not None]
        part["collection_warnings"] = [w for u in units for w in u[2]]
        part["scanner_errors"] = [e for u in units for e in u[3]]
        out.append(part)
    return out


def specialist_examples(report: dict, host_id: str, max_prompt_chars: int) -> list[dict]:
    """Conversational prompt/completion rows (TRL's format) for one report."""
    rows = []
    for i, part in enumerate(split_report(report, max_prompt_chars)):
        rows.append({
            "id": f"{host_id}-s{i}",
            "host_id": host_id,
            "prompt": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": compact(part)}],
            "completion": [{"role": "assistant", "content": compact(enrich_report(part))}],
        })
    return rows
