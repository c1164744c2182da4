"""Specialist examples: prompt = raw report (compact JSON), completion = its enriched report.

A report longer than `max_prompt_chars` is cut into parts that keep the host, from the report alone (no teacher:
`secml triage` cuts a report at inference exactly as the corpus cut it at training, `split_prompts`):
- Findings are cut in scanner-group order (runtime, kernel, filesystem, policy), a scanner too long for one
  part into chunks, and packed greedily so that each part's prompt fits `max_prompt_chars`.
- Every part repeats the host `meta`, `summary` and `summary_extension`, and carries in
  `meta.secml_context` what the whole host holds (`host_context`): finding counts per scanner and per
  severity, warning counts, and the host's coverage markers and findings above info ranked by the scanner's
  own severity, up to a third of the prompt budget, with the number left out. The same in every part, so the
  parts share a prompt prefix.
- The completion of a part (training only, `split_report`) is the whole report's enrichment projected onto
  the part: its own listed findings and the actions on them, every correlation that touches them, and the
  host-level fields (summaries with the risk level, reasons and coverage; reductions) unchanged. So no part
  contradicts its host, no correlation is lost, and `merge_parts` rebuilds the whole enrichment from the parts.
  Parts are not sized by their completions: measured over 41 hosts at 2,500 characters, packing by the
  teacher's completion sizes changed 1.7% of the parts and left as many completions over the budget.
"""

from __future__ import annotations

import json

from secml_recipes.tasks.prompts import compact, specialist_messages
from secml_recipes.teacher.enrich import SEVERITY_ORDER, Enrichment, build_enrichment

SCANNER_GROUPS = [
    ["processes", "network", "ioc", "ebpf_exec_trace"],
    ["kernel_params", "kernel_hardening", "modules"],
    ["world_writable", "suid_sgid", "mounts", "integrity", "yara"],
    ["mac", "systemd_units", "auditd", "containers"],
]
COVERAGE_MARKERS = {"ebpf:disabled", "proc.monitoring.complete"}
CONTEXT_SHARE = 3  # the context may use up to 1/CONTEXT_SHARE of the prompt budget
WARNINGS_PER_UNIT = 40


def _group_order(scanner: str) -> int:
    for i, group in enumerate(SCANNER_GROUPS):
        if scanner in group:
            return i * 100 + group.index(scanner)
    return 10_000


def _scanner_tag(finding: dict) -> str:
    return next((t.split(":", 1)[1] for t in finding.get("tags", []) if t.startswith("scanner:")), "")


def _units(report: dict, prompt_budget: int) -> list[dict]:
    """Scanner results (or chunks of one) in group order, each with its warnings, errors and prompt size."""
    warnings_by, errors_by = {}, {}
    for w in report.get("collection_warnings", []):
        warnings_by.setdefault(w.get("scanner"), []).append(w)
    for e in report.get("scanner_errors", []):
        errors_by.setdefault(e.get("scanner"), []).append(e)
    results = {r["scanner"]: r for r in report.get("results", [])}
    units = []
    for scanner in sorted(set(results) | set(warnings_by) | set(errors_by), key=_group_order):
        result, warns, errs = results.get(scanner), warnings_by.get(scanner, []), errors_by.get(scanner, [])
        findings = result["findings"] if result else []
        chunks, chunk, size = [], [], 0
        for f in findings:
            cost = len(compact(f)) + 1
            if chunk and size + cost > prompt_budget // 2:
                chunks.append(chunk)
                chunk, size = [], 0
            chunk.append(f)
            size += cost
        chunks.append(chunk)
        for i, part in enumerate(chunks):
            piece = dict(result, findings=part, finding_count=len(part)) if result else None
            units.append(
                {
                    "scanner": scanner,
                    "result": piece,
                    "warnings": [],
                    "errors": errs if i == 0 else [],
                    "prompt": len(compact(piece or {})) + len(compact(errs if i == 0 else [])),
                }
            )
        for start in range(0, len(warns), WARNINGS_PER_UNIT):  # 150 kernel-thread warnings do not fit one part
            chunk = warns[start : start + WARNINGS_PER_UNIT]
            units.append(
                {
                    "scanner": scanner,
                    "result": None,
                    "warnings": chunk,
                    "errors": [],
                    "prompt": len(compact(chunk)),
                }
            )
    return units


def _severity_rank(finding: dict) -> tuple[int, int]:
    """The scanner's own ranking of a finding: its severity, then its base severity score."""
    severity = SEVERITY_ORDER.index(finding["severity"]) if finding.get("severity") in SEVERITY_ORDER else -1
    try:
        score = int(finding.get("base_severity_score") or 0)
    except (TypeError, ValueError):
        score = 0
    return severity, score


def _most_severe_first(severity: str) -> int:
    return -SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else 1


def _top_order(report: dict) -> list[tuple[str, dict]]:
    """(scanner, finding) the context may carry, most important first by the scanner's own word: coverage
    markers (what the scan did not see), then every finding above info by severity and base score, in scanner
    group order among equals. Info findings are only counted: they are most of a host and rarely matter."""
    found = [(r["scanner"], f) for r in report.get("results", []) for f in r.get("findings", [])]
    markers = [(s, f) for s, f in found if f["id"] in COVERAGE_MARKERS]
    ranked = [(s, f) for s, f in found if f.get("severity") != "info" and f["id"] not in COVERAGE_MARKERS]
    ranked.sort(key=lambda sf: tuple(-x for x in _severity_rank(sf[1])) + (_group_order(sf[0]),))
    return markers + ranked


def host_context(report: dict, budget: int) -> dict:
    """What the whole host holds, the same for every part of it, from the report alone (no teacher: triage builds
    the same context at inference as the corpus did at training; the same for every part: the parts share a
    prompt prefix, see `prompts.report_text`): finding counts per scanner and per severity, warning counts, and
    the host's most important findings by the scanner's own word (`_top_order`) within `budget` characters,
    with the number left out."""
    counts = {r["scanner"]: len(r.get("findings", [])) for r in report.get("results", [])}
    severities: dict[str, int] = {}
    for r in report.get("results", []):
        for f in r.get("findings", []):
            severities[f.get("severity", "unknown")] = severities.get(f.get("severity", "unknown"), 0) + 1
    warnings: dict[str, int] = {}
    for w in report.get("collection_warnings", []):
        warnings[w.get("code", "unknown")] = warnings.get(w.get("code", "unknown"), 0) + 1
    context = {
        "scanner_finding_counts": counts,
        "severity_counts": {s: severities[s] for s in sorted(severities, key=_most_severe_first)},
        "warning_counts": warnings,
        "top_findings": [],
        "top_findings_omitted": 0,
    }
    size = len(compact(context))
    seen = set()
    for scanner, finding in _top_order(report):
        key = (scanner, finding["id"])
        if key in seen:
            continue
        seen.add(key)
        entry = {"scanner": scanner, **{k: finding[k] for k in ("id", "severity", "metadata") if finding.get(k)}}
        cost = len(compact(entry)) + 1
        if size + cost > budget:
            context["top_findings_omitted"] += 1
            continue
        context["top_findings"].append(entry)
        size += cost
    return context


def project(enrichment: Enrichment, part_keys: set) -> dict:
    """The whole report's enrichment restricted to one part's findings (host-level fields unchanged)."""
    out = enrichment.output
    findings = [f for f in out["enriched_findings"] if (_scanner_tag(f), f["id"]) in part_keys]
    ids = {f["id"] for f in findings} | {key[1] for key in part_keys}
    correlations = [c for c in out["correlations"] if ids & set(c["related_finding_ids"])]
    actions = [a for a, target in zip(out["actions"], enrichment.action_targets) if target in part_keys]
    return {**out, "enriched_findings": findings, "correlations": correlations, "actions": actions}


def split_prompts(report: dict, max_prompt_chars: int) -> list[tuple[dict, set]]:
    """[(prompt report, its findings' (scanner, id) keys)]: the report when it fits, else parts (module docstring),
    from the report alone."""
    if len(compact(report)) <= max_prompt_chars:
        keys = {(r["scanner"], f["id"]) for r in report.get("results", []) for f in r.get("findings", [])}
        return [(report, keys)]
    shell = {k: v for k, v in report.items() if k not in ("results", "collection_warnings", "scanner_errors")}
    context_budget = max_prompt_chars // CONTEXT_SHARE
    prompt_budget = max(1000, max_prompt_chars - len(compact(shell)) - context_budget - 100)
    packs, current, size = [], [], 0
    for unit in _units(report, prompt_budget):
        if current and size + unit["prompt"] > prompt_budget:
            packs.append(current)
            current, size = [], 0
        current.append(unit)
        size += unit["prompt"]
    if current:
        packs.append(current)
    out = []
    context = host_context(report, context_budget)
    for n, units in enumerate(packs, 1):
        part = json.loads(compact(shell))
        part["meta"]["secml_part"] = f"{n}/{len(packs)}"
        part["meta"]["secml_context"] = context
        part["results"] = [u["result"] for u in units if u["result"] is not None]
        part["collection_warnings"] = [w for u in units for w in u["warnings"]]
        part["scanner_errors"] = [e for u in units for e in u["errors"]]
        out.append((part, {(u["scanner"], f["id"]) for u in units if u["result"] for f in u["result"]["findings"]}))
    return out


def split_report(report: dict, max_prompt_chars: int, enrichment: Enrichment | None = None) -> list[tuple[dict, dict]]:
    """[(prompt report, completion)]: `split_prompts`'s parts, each with the whole enrichment projected onto it."""
    enrichment = enrichment or build_enrichment(report)
    parts = split_prompts(report, max_prompt_chars)
    if len(parts) == 1:
        return [(report, enrichment.output)]
    return [(part, project(enrichment, keys)) for part, keys in parts]


def merge_parts(parts: list[dict]) -> dict:
    """One enriched report from the enrichments of a report's parts (the inverse of `project`)."""
    if not parts:
        raise ValueError("no parts to merge")
    findings, seen = [], set()
    for part in parts:
        for f in part.get("enriched_findings", []):
            key = (_scanner_tag(f), f["id"])
            if key not in seen:
                seen.add(key)
                findings.append(f)
    correlations = {c["id"]: c for part in parts for c in part.get("correlations", [])}
    actions = {a["action"]: a for part in parts for a in part.get("actions", [])}
    return {
        **parts[0],
        "enriched_findings": sorted(findings, key=lambda f: (-f["risk_score"], f["id"], f["tags"])),
        "correlations": sorted(correlations.values(), key=lambda c: (-c["risk_score_delta"], c["id"])),
        "actions": sorted(actions.values(), key=lambda a: -a["priority"]),
    }


def specialist_examples(report: dict, host_id: str, max_prompt_chars: int) -> list[dict]:
    """Conversational prompt/completion rows (TRL's format) for one report."""
    rows = []
    for i, (part, completion) in enumerate(split_report(report, max_prompt_chars)):
        rows.append(
            {
                "id": f"{host_id}-s{i}",
                "host_id": host_id,
                "prompt": specialist_messages(part),
                "completion": [{"role": "assistant", "content": compact(completion)}],
            }
        )
    return rows
