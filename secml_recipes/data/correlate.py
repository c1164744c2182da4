"""Correlations: findings that mean more together than apart, as a table of join rules.

A rule names the two kinds of finding it joins (`left`, `right`), when a pair belongs together (`joins`),
and what the pair means. Every rule uses only what sys-scan 5.0.0 emits; rules whose inputs a scan does
not carry (no yara, no audit, no integrity) simply find nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from .assess import Assessment, ioc_exe_and_pid, md
from .knowledge.ioc import SCRATCH_ROOTS


@dataclass
class Item:
    scanner: str
    finding: dict
    assessment: Assessment

    @property
    def id(self) -> str:
        return self.finding["id"]


def _is(scanner: str, pred: Callable[[Item], bool] = lambda i: True) -> Callable[[Item], bool]:
    return lambda item: item.scanner == scanner and pred(item)


def _exe(item: Item) -> str:
    return ioc_exe_and_pid(item.id)[0].replace(" (deleted)", "")


def _pid(item: Item) -> str:
    return ioc_exe_and_pid(item.id)[1] or md(item.finding, "pid")


def _serious(item: Item) -> bool:
    return item.assessment.verdict == "contain" or item.assessment.host_level in ("high", "critical")


@dataclass(frozen=True)
class CorrelationRule:
    rule: str
    title: str
    left: Callable[[Item], bool]
    right: Callable[[Item], bool]
    joins: Callable[[Item, Item], bool]
    rationale: Callable[[Item, Item], str]
    severity: str
    delta: int
    techniques: tuple[str, ...]


RULES = [
    CorrelationRule(
        "ioc_matches_signature", "Running suspicious program matches a malware signature",
        _is("ioc"), _is("yara"),
        lambda a, b: os.path.basename(_exe(a)) == os.path.basename(md(b.finding, "path")),
        lambda a, b: f"{_exe(a)} (pid {_pid(a)}) runs, and a copy named like it at {md(b.finding, 'path')} "
                     f"carries '{md(b.finding, 'pattern')}'.",
        "critical", 25, ("T1496",)),
    CorrelationRule(
        "ioc_process_network", "Suspicious process has network activity",
        _is("ioc"), _is("network"),
        lambda a, b: (_pid(a) and md(b.finding, "pid") == _pid(a)) or md(b.finding, "exe") == _exe(a),
        lambda a, b: f"The flagged process {_exe(a)} (pid {_pid(a)}) also holds socket {b.id}.",
        "critical", 20, ("T1071",)),
    CorrelationRule(
        "ioc_exec_traced", "Suspicious process seen by the exec trace",
        _is("ioc"), _is("ebpf_exec_trace", lambda i: bool(md(i.finding, "pid"))),
        lambda a, b: md(b.finding, "pid") == _pid(a),
        lambda a, b: f"The exec trace saw pid {_pid(a)} start ({md(b.finding, 'comm') or md(b.finding, 'command')}).",
        "high", 10, ("T1059.004",)),
    CorrelationRule(
        "ioc_exec_not_audited", "Suspicious process on a host without execution auditing",
        _is("ioc", _serious), _is("auditd", lambda i: i.id in ("auditd:execve:absent", "auditd:rules:missing")),
        lambda a, b: True,
        lambda a, b: f"{_exe(a)} ran while {b.id} holds: whatever it executed left no audit record.",
        "high", 15, ("T1562.012",)),
    CorrelationRule(
        "exec_from_exec_mount", "Suspicious process runs from a temporary mount that allows execution",
        _is("ioc", lambda i: _exe(i).startswith(SCRATCH_ROOTS)), _is("mounts", lambda i: "noexec-missing" in i.id),
        lambda a, b: _exe(a).startswith(md(b.finding, "mount").rstrip("/") + "/"),
        lambda a, b: f"{md(b.finding, 'mount')} allows execution and {_exe(a)} runs from it.",
        "high", 10, ("T1059.004",)),
    CorrelationRule(
        "setid_binary_writable", "Set-id binary that any user can overwrite",
        _is("suid_sgid"), _is("world_writable", lambda i: not md(i.finding, "rule")),
        lambda a, b: a.id == b.id,
        lambda a, b: f"{a.id} runs with elevated rights and every user can rewrite it: root for anyone.",
        "critical", 30, ("T1548.001",)),
    CorrelationRule(
        "replaced_binary_running", "Replaced system binary is running",
        _is("integrity", lambda i: i.id.startswith("pkg_mismatch:") and not md(i.finding, "path").startswith("/etc/")),
        lambda i: i.scanner == "ioc" or (i.scanner == "processes" and bool(i.finding.get("description"))),
        lambda a, b: md(a.finding, "path") in (_exe(b) if b.scanner == "ioc"
                                               else b.finding.get("description", "").split(" ")[0]),
        lambda a, b: f"{md(a.finding, 'path')} differs from its package and runs now as pid {_pid(b) or b.id}.",
        "critical", 20, ("T1554",)),
    CorrelationRule(
        "suspect_module_without_lockdown", "Suspicious kernel module loaded with lockdown off",
        _is("modules", lambda i: i.assessment.verdict in ("contain", "investigate")),
        _is("kernel_hardening", lambda i: i.id == "kernel:lockdown:disabled"),
        lambda a, b: True,
        lambda a, b: f"Module {a.id} is {a.assessment.verdict}-grade and kernel lockdown is off, so nothing stopped "
                     "it from loading.",
        "critical", 25, ("T1547.006", "T1014")),
    CorrelationRule(
        "service_runs_suspicious_program", "Service unit starts a suspicious program",
        _is("systemd_units", lambda i: bool(md(i.finding, "exec_start"))), _is("ioc"),
        lambda a, b: md(a.finding, "exec_start") == _exe(b),
        lambda a, b: f"Unit {md(a.finding, 'unit')} starts {_exe(b)} at boot: persistence.",
        "critical", 20, ("T1543.002",)),
]


def correlate(items: list[Item]) -> list[dict]:
    """sys-scan-agent `Correlation` objects for every rule pair that joins, strongest first."""
    out: dict[str, dict] = {}
    for rule in RULES:
        lefts = [i for i in items if rule.left(i)]
        rights = [i for i in items if rule.right(i)]
        for a in lefts:
            for b in rights:
                if a is b or not rule.joins(a, b):
                    continue
                related = sorted({a.id, b.id})
                cid = f"corr:{rule.rule}:{a.id}"
                if cid in out:
                    out[cid]["related_finding_ids"] = sorted(set(out[cid]["related_finding_ids"]) | set(related))
                    continue
                out[cid] = {"id": cid, "title": rule.title, "rationale": rule.rationale(a, b),
                            "related_finding_ids": related, "risk_score_delta": rule.delta,
                            "tags": [f"rule:{rule.rule}"] + [f"attack:{t}" for t in rule.techniques],
                            "severity": rule.severity}
    return sorted(out.values(), key=lambda c: (-c["risk_score_delta"], c["id"]))
