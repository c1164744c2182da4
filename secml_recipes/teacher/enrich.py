"""The reference enricher (the teacher): raw sys-scan report -> sys-scan-agent `EnrichedOutput`.

The output uses sys-scan-agent 7.0.0's own field names and meanings (`sys_scan_agent.models`), a subset
of them (docs/teacher.md lists which fields are left out and why):

- `enriched_findings`: `Finding` objects for the findings an analyst lists (everything above info except
  bulk stock gaps, plus info findings that need review or belong to a correlation): `risk_subscores` on
  the agent's scale (impact 0-10, exposure 0-3, anomaly 0-2, confidence 0-1), `risk_score` by the agent's
  own formula (`sys_scan_agent.risk.compute_risk`, default weights), `probability_actionable` (the
  verdict's calibrated prior), `severity_source` (`raw`, or `bumped` by a correlation), `rationale` (what
  the evidence shows, what would confirm or clear it), `allowlist_reason` for expected findings, `tags`
  (`scanner:<name>`, the verdict, `attack:<technique>`, ...), `correlation_refs`.
- `correlations`, `actions` (`ActionItem`: higher `priority` first, as the agent's canonical order sorts),
  `reductions` (module, SUID and top-finding summaries), `summaries` (`executive_summary`, `analyst`:
  the host's risk level with its reasons, verdict counts and the coverage section, `attack_coverage`).

Judgements come from `assess.py` (rules as tables over `knowledge/`), correlations from `correlate.py`,
coverage from `coverage.py`. Deterministic: the same report gives the same bytes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from secml_recipes.teacher.assess import CATEGORY_BY_SCANNER, LEVELS, VERDICTS, Assessment, Host, assess_finding
from secml_recipes.teacher.correlate import Item, correlate
from secml_recipes.teacher.coverage import scan_coverage
from secml_recipes.teacher.knowledge.modules import NOTABLE_MODULES

ENRICHED_VERSION = "1.0"  # sys-scan-agent's EnrichedOutput.version
FORMAT_VERSION = 2  # of the corpus built from this teacher; 1 was the old secml-only format
RISK_WEIGHTS = {"impact": 5.0, "exposure": 3.0, "anomaly": 2.0}  # sys_scan_agent.risk.DEFAULT_WEIGHTS
RISK_CAPS = {"impact": 10.0, "exposure": 3.0, "anomaly": 2.0}  # sys_scan_agent.risk.CAPS
SEVERITY_ORDER = ["info", "low", "medium", "high", "critical"]
CORRELATION_LEVEL = {"critical": "critical", "high": "high", "medium": "medium"}
MAX_ACTIONS = 8
TOP_FINDINGS = 5


def risk_score(subscores: dict[str, float]) -> int:
    """sys-scan-agent's `compute_risk` with its default weights: weighted impact/exposure/anomaly over the
    weighted maximum, times confidence, as 0-100."""
    raw = sum(subscores[k] * w for k, w in RISK_WEIGHTS.items())
    top = sum(RISK_CAPS[k] * w for k, w in RISK_WEIGHTS.items())
    return int(round(min(100.0, max(0.0, raw / top * 100.0 * subscores["confidence"]))))


def subscores_for(a: Assessment) -> dict[str, float]:
    impact, exposure, anomaly, confidence = VERDICTS[a.verdict].subscores
    return {
        "impact": a.impact if a.impact is not None else impact,
        "exposure": exposure,
        "anomaly": anomaly,
        "confidence": confidence,
    }


def _bump(severity: str, correlations: list[dict]) -> tuple[str, str]:
    top = max(
        [severity] + [c["severity"] for c in correlations],
        key=lambda s: SEVERITY_ORDER.index(s) if s in SEVERITY_ORDER else -1,
    )
    return (top, "bumped") if top != severity else (severity, "raw")


def enriched_finding(item: Item, correlations: list[dict]) -> dict:
    a, f = item.assessment, item.finding
    subs = subscores_for(a)
    refs = [c for c in correlations if f["id"] in c["related_finding_ids"]]
    severity, source = _bump(f["severity"], refs)
    out = {
        "id": f["id"],
        "title": f.get("title", ""),
        "severity": severity,
        "risk_score": risk_score(subs),
        "category": CATEGORY_BY_SCANNER.get(item.scanner, item.scanner),
        "tags": sorted(set(a.tags) | {f"attack:{t}" for t in a.techniques}),
        "risk_subscores": subs,
        "probability_actionable": VERDICTS[a.verdict].probability,
        "severity_source": source,
        "rationale": a.rationale,
    }
    if refs:
        out["correlation_refs"] = [c["id"] for c in refs]
    if a.allowlist_reason:
        out["allowlist_reason"] = a.allowlist_reason
    if a.operational:
        out["operational_error"] = True
    return out


def host_verdict(items: list[Item], correlations: list[dict], findings: dict[str, dict]) -> tuple[str, list[str]]:
    """The host's risk level and the reasons for it (strongest first)."""
    drivers = []
    for item in items:
        a = item.assessment
        if a.expected or a.verdict == "operational":
            continue
        drivers.append((LEVELS.index(a.host_level), findings.get(item.id, {}).get("risk_score", 0), item))
    for c in correlations:
        level = CORRELATION_LEVEL.get(c["severity"], "low")
        drivers.append((LEVELS.index(level), 100 + c["risk_score_delta"], c))
    if not drivers:
        return "low", ["every finding is expected on a stock install or inventory: nothing to act on"]
    drivers.sort(key=lambda d: (-d[0], -d[1], d[2]["id"] if isinstance(d[2], dict) else d[2].id))
    level = LEVELS[drivers[0][0]]
    reasons = []
    for lvl, _, d in drivers:
        if len(reasons) >= 3 or (reasons and lvl < drivers[0][0] - 1):
            break
        if isinstance(d, dict):
            reasons.append(f"{LEVELS[lvl]}: correlation {d['title'].lower()} ({', '.join(d['related_finding_ids'])})")
        else:
            reasons.append(f"{LEVELS[lvl]}: {d.id}: {d.assessment.headline}")
    return level, reasons


ACTION_TIERS = {"contain": 2, "investigate": 1, "verify_provenance": 1}  # containment, evidence, then hygiene


def _action_key(item: Item) -> str:
    """What the action does to what: two findings whose actions share it are one action (eight pids of one
    executable are one check), whatever their wording."""
    return item.assessment.action_key or item.assessment.action


def _actions(
    items: list[Item], findings: dict[str, dict], correlations: list[dict]
) -> tuple[list[dict], list[tuple[str, str]]]:
    """At most MAX_ACTIONS actions, one per meaning: containment first, then evidence to confirm, then hygiene
    (a hardening step never outranks containing a running intruder), each tier by host level and verdict."""
    todo = [i for i in items if i.assessment.action]
    todo.sort(
        key=lambda i: (
            -ACTION_TIERS.get(i.assessment.verdict, 0),
            -LEVELS.index(i.assessment.host_level),
            -VERDICTS[i.assessment.verdict].rank,
            -findings.get(i.id, {}).get("risk_score", 0),
            i.id,
        )
    )
    groups: dict[str, list[Item]] = {}
    for item in todo:
        groups.setdefault(_action_key(item), []).append(item)
    chosen = list(groups.values())[:MAX_ACTIONS]
    actions = []
    for n, group in enumerate(chosen):
        first = group[0].assessment
        details = list(dict.fromkeys(i.assessment.action_merge[1] for i in group if i.assessment.action_merge))
        merged = first.action_merge and len(details) > 1
        text = first.action_merge[0].format(details=", ".join(details)) if merged else first.action
        ids = {i.id for i in group}
        actions.append(
            {
                "priority": len(chosen) - n,
                "action": text,
                "correlation_refs": [c["id"] for c in correlations if ids & set(c["related_finding_ids"])],
            }
        )
    return actions, [(g[0].scanner, g[0].id) for g in chosen]


def _reductions(items: list[Item], listed: list[dict]) -> dict:
    modules = [i for i in items if i.scanner == "modules"]
    suid = [i for i in items if i.scanner == "suid_sgid"]
    out: dict = {}
    if modules:
        names = [i.id for i in modules]
        count, distinct = len(names), len(set(names))
        summary = next((i.finding for i in modules if i.id == "module_summary"), None)
        if summary is not None:  # --modules-summary: one finding that counts /proc/modules and samples names
            md = summary.get("metadata") or {}
            names = [n for n in names if n != "module_summary"] + [
                n for key in ("sample", "out_of_tree_sample", "unsigned_sample") for n in md.get(key, "").split(",")
            ]
            total = str(md.get("total", ""))
            count = distinct = int(total) if total.isdigit() else count
        out["module_summary"] = {
            "module_count": count,
            "distinct_modules": distinct,
            "notable_modules": sorted(n for n in set(names) if n in NOTABLE_MODULES),
        }
    if suid:
        out["suid_summary"] = {
            "suid_total": len(suid),
            "unexpected_suid": sorted(i.id for i in suid if not i.assessment.expected),
        }
    ranked = sorted(listed, key=lambda f: (-f["risk_score"], f["id"]))[:TOP_FINDINGS]
    out["top_findings"] = [
        {"id": f["id"], "title": f["title"], "severity": f["severity"], "risk_score": f["risk_score"]} for f in ranked
    ]
    return out


def _listed(item: Item, correlated: frozenset = frozenset()) -> bool:
    """Whether the finding is listed one by one. A scanner may report one id twice (5.0.0's systemd scanner
    reads a unit in both /lib/systemd/system and /usr/lib/systemd/system, the same file on a merged-/usr
    system): `build_enrichment` lists each (scanner, id) once, the first seen, as systemd's own precedence
    (/etc over /usr/lib over /lib) resolves a unit name."""
    return item.id in correlated or (
        item.assessment.listed
        and (item.finding.get("severity") != "info" or item.assessment.verdict not in ("informational", "expected"))
    )


def executive_summary(
    host: Host,
    report: dict,
    listed: list[Item],
    level: str,
    reasons: list[str],
    coverage: dict,
    correlations: list[dict],
) -> str:
    """Host, collection, risk, what is open, the main reason and what was not assessed: all of it readable
    from the report's meta and summary plus the listed findings, so every part of a split report can say it."""
    counts = (report.get("summary") or {}).get("severity_counts") or {}
    above_info = sum(int(n) for sev, n in counts.items() if sev != "info")
    verdicts = Counter(i.assessment.verdict for i in listed)
    text = (
        f"{host.hostname} ({host.distro}), scanned as {coverage['collected_as']}: risk {level}. "
        f"{above_info} findings above info."
    )
    parts = [
        f"{n} to {v.replace('_', ' ')}"
        for v, n in sorted(verdicts.items(), key=lambda kv: -VERDICTS[kv[0]].rank)
        if v not in ("expected", "informational", "operational")
    ]
    if parts:
        text += " Open: " + ", ".join(parts) + "."
    if correlations:
        text += f" {len(correlations)} correlation(s), the strongest: {correlations[0]['title'].lower()}."
    if reasons:
        text += f" Main reason: {reasons[0]}"
        text += "" if text.endswith(".") else "."
    gaps = sorted(coverage["not_run"]) + sorted(coverage["ran_empty"])
    if gaps:
        text += f" Not assessed: {', '.join(gaps)}."
    return text


def build_items(report: dict) -> tuple[Host, list[Item]]:
    host = Host.from_report(report)
    items = [
        Item(r.get("scanner", ""), f, assess_finding(r.get("scanner", ""), f, host))
        for r in report.get("results", [])
        for f in r.get("findings", [])
    ]
    return host, items


@dataclass
class Enrichment:
    """The teacher's output and what it was built from: `action_targets[i]` is the finding (scanner, id)
    behind `output["actions"][i]`, which is what splitting a report into parts needs."""

    output: dict
    items: list[Item]
    action_targets: list[tuple[str, str]]


def enrich_report(report: dict) -> dict:
    """The enriched report (EnrichedOutput as a dict) for a raw sys-scan report."""
    return build_enrichment(report).output


def build_enrichment(report: dict) -> Enrichment:
    host, items = build_items(report)
    correlations = correlate(items)
    correlated = frozenset(fid for c in correlations for fid in c["related_finding_ids"])
    first: dict[tuple[str, str], Item] = {}
    for item in items:
        if _listed(item, correlated):
            first.setdefault((item.scanner, item.id), item)
    listed_items = list(first.values())
    findings = [enriched_finding(i, correlations) for i in listed_items]
    findings.sort(key=lambda f: (-f["risk_score"], f["id"], f["tags"]))
    by_id = {f["id"]: f for f in findings}
    level, reasons = host_verdict(items, correlations, by_id)
    coverage = scan_coverage(report, host)
    techniques = sorted(
        {t for f in findings for t in f["tags"] if t.startswith("attack:")}
        | {t for c in correlations for t in c["tags"] if t.startswith("attack:")}
    )
    summaries = {
        "executive_summary": executive_summary(host, report, listed_items, level, reasons, coverage, correlations),
        "analyst": {"risk_level": level, "risk_reasons": reasons, "coverage": coverage},
    }
    if techniques:
        summaries["attack_coverage"] = {
            "technique_count": len(techniques),
            "techniques": [t.split(":", 1)[1] for t in techniques],
        }
    actions, targets = _actions(items, by_id, correlations)
    output = {
        "version": ENRICHED_VERSION,
        "enriched_findings": findings,
        "correlations": correlations,
        "reductions": _reductions(items, findings),
        "summaries": summaries,
        "actions": actions,
    }
    return Enrichment(output, items, targets)
