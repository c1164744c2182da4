"""What a scan did not look at: scanners switched off, scanners that ran empty for a reason, the limits of
collecting as a non-root user, and the scanners' fixed scope. An analyst states this before any verdict,
because "nothing found" means nothing where nothing was searched."""

from __future__ import annotations

from collections import Counter

from secml_recipes.scan import legacy
from secml_recipes.scan.v5_0_0 import Config
from secml_recipes.scan.v5_0_0 import registered as registered_5_0_0
from secml_recipes.teacher.assess import Host
from secml_recipes.teacher.knowledge.scanner import (
    EBPF_FALLBACK,
    EMPTY_MEANS,
    GATES,
    MODULES_BY_NAME,
    NON_ROOT_LIMITS,
    SCOPE_LIMITS,
    WARNING_MEANINGS,
)


def scan_coverage(report: dict, host: Host | None = None) -> dict:
    """{collected_as, not_run, ran_empty, limits, warnings} for a raw report (see module docstring)."""
    host = host or Host.from_report(report)
    counts = {r.get("scanner"): len(r.get("findings", [])) for r in report.get("results", [])}
    findings = {f["id"]: f for r in report.get("results", []) for f in r.get("findings", [])}
    not_run = {}
    for scanner, switch in GATES.items():
        if not host.enabled(switch):
            not_run[scanner] = f"{switch} off"
        elif scanner not in counts:
            not_run[scanner] = "absent from the report (disabled or failed)"
    version = str(report.get("meta", {}).get("tool_version", ""))
    if legacy.is_legacy(report):  # converted from 0.1.x: the scanners of its day, and --enable/--disable
        for scanner in dict.fromkeys([*registered_5_0_0(Config()), *GATES]):
            if scanner not in legacy.SCANNERS:
                not_run[scanner] = f"no such scanner in sys-scan {version}"
            elif scanner not in counts:
                not_run[scanner] = (
                    "absent from the report (left out with --enable/--disable, or not in this 0.1.x build)"
                )
    ran_empty = {s: EMPTY_MEANS[s] for s, n in counts.items() if n == 0 and s in EMPTY_MEANS}
    root = host.euid == "0"
    limits = [] if root else list(NON_ROOT_LIMITS)
    limits += [text for scanner, text in SCOPE_LIMITS.items() if scanner in counts]
    if "modules" in counts and not (host.enabled("modules_anomalies_only") or host.enabled("modules_summary_only")):
        limits.append(MODULES_BY_NAME)
    if "ebpf:disabled" in findings:
        seconds = (findings.get("proc.monitoring.complete", {}).get("metadata") or {}).get("duration_seconds", "3")
        limits.append(EBPF_FALLBACK.format(seconds=seconds))
    warnings = Counter(w.get("code", "unknown") for w in report.get("collection_warnings", []))
    return {
        "collected_as": f"uid {host.euid or '?'}" + (" (root)" if root else " (not root)"),
        "not_run": dict(sorted(not_run.items())),
        "ran_empty": ran_empty,
        "limits": limits,
        "warnings": {
            code: f"{n}: {WARNING_MEANINGS.get(code, 'collection problems')}" for code, n in sorted(warnings.items())
        },
    }
