"""Correlations: findings that mean more together than apart, as a table of join rules.

A rule names the two kinds of finding it joins (`left`, `right`), when a pair belongs together (`joins`),
and what the pair means. Every rule uses only what sys-scan 5.0.0 emits; rules whose inputs a scan does
not carry (no yara, no audit, no integrity) simply find nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from secml_recipes.teacher.assess import Assessment, integrity_path, ioc_exe_and_pid, ioc_signals, md
from secml_recipes.teacher.knowledge.autostart import autostart_file
from secml_recipes.teacher.knowledge.ioc import SCRATCH_ROOTS


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


def _upgraded_service(item: Item) -> bool:
    """An IOC that is only a system executable replaced on disk while it runs (the teacher's review verdict)."""
    return item.assessment.verdict == "review" and ioc_signals(item.finding)["deleted"]


def _unexplained_setid(item: Item) -> bool:
    """A set-id binary no package or vendor explains (the teacher's verify_provenance or contain on it)."""
    return item.assessment.verdict in ("verify_provenance", "contain") and "third_party" not in item.assessment.tags


def _autostart(item: Item) -> tuple[str, str] | None:
    """(what reads it, ATT&CK technique) when a world-writable file is one root runs or loads on its own."""
    if item.scanner != "world_writable" or md(item.finding, "rule"):
        return None
    row = autostart_file(item.id)
    return (row.reads, row.technique) if row else None


def _suspicious(item: Item) -> bool:
    """A finding the teacher itself judged suspicious: contained, or under investigation above low. Expected,
    informational and review verdicts (a snap's loader variable, an upgraded daemon) join nothing."""
    a = item.assessment
    return a.verdict == "contain" or (a.verdict == "investigate" and a.host_level != "low")


def _same_pid(a: Item, b: Item) -> bool:
    """The socket's own metadata names the process's pid: the only join that shows who holds a socket (one
    executable path runs as many processes, and a snap's path as every user's copy)."""
    return bool(_pid(a)) and md(b.finding, "pid") == _pid(a)


def _remote(item: Item) -> str:
    rip, rport = md(item.finding, "rip"), md(item.finding, "rport")
    return f", connected to {rip}:{rport}" if rip and rport not in ("", "0") else ""


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
    severity: str | Callable[[Item, Item], str]
    delta: int
    techniques: tuple[str, ...] | Callable[[Item, Item], tuple[str, ...]]
    per_host: bool = False  # one correlation for every pair that joins, instead of one per left finding

    def techniques_for(self, a: Item, b: Item) -> tuple[str, ...]:
        return self.techniques(a, b) if callable(self.techniques) else self.techniques

    def severity_for(self, a: Item, b: Item) -> str:
        return self.severity(a, b) if callable(self.severity) else self.severity


RULES = [
    CorrelationRule(
        "intruder_with_unexplained_setid",
        "Suspicious process on a host with an unexplained set-id binary",
        _is("ioc", _serious),
        _is("suid_sgid", _unexplained_setid),
        lambda a, b: True,
        lambda a, b: (
            f"{_exe(a)} (pid {_pid(a)}) shows someone running code here, and {b.id} carries a set-id bit "
            "that no package explains: a planted root backdoor or the escalation it used."
        ),
        "critical",
        20,
        ("T1548.001",),
    ),
    CorrelationRule(
        "intruder_with_writable_autostart",
        "Suspicious process on a host where anyone can rewrite an autostart file",
        _is("ioc", _serious),
        lambda i: _autostart(i) is not None,
        lambda a, b: True,
        lambda a, b: (
            f"{_exe(a)} (pid {_pid(a)}) runs, and {b.id} is writable by every user while "
            f"{_autostart(b)[0]}: the intruder's way to persist or to reach root."
        ),
        "critical",
        15,
        lambda a, b: (_autostart(b)[1],),
    ),
    CorrelationRule(
        "restart_pending_after_upgrade",
        "Several services still run executables replaced by an upgrade",
        _is("ioc", _upgraded_service),
        _is("ioc", _upgraded_service),
        lambda a, b: True,
        lambda a, b: (
            f"{_exe(a)} (pid {_pid(a)}), {_exe(b)} (pid {_pid(b)}) and any other member run files deleted "
            "from system paths: one package upgrade without a restart explains them all, and one restart "
            "(needrestart names the services) clears them; a member whose /proc/<pid>/exe hash matches no "
            "package version does not belong here."
        ),
        "low",
        0,
        (),
        per_host=True,
    ),
    CorrelationRule(
        "setid_without_aslr",
        "Unexplained set-id binary on a host with address-space randomisation off",
        _is(
            "kernel_params",
            lambda i: (
                i.id.endswith("/randomize_va_space")
                and md(i.finding, "current") in ("0", "1")
                and md(i.finding, "status") == "mismatch"
            ),
        ),
        _is("suid_sgid", _unexplained_setid),
        lambda a, b: True,
        lambda a, b: (
            f"kernel.randomize_va_space = {md(a.finding, 'current')} and {b.id} runs with raised rights: "
            "any memory-safety bug in it becomes a reliable local root exploit."
        ),
        "high",
        10,
        ("T1068",),
    ),
    CorrelationRule(
        "ioc_matches_signature",
        "Running suspicious program matches a malware signature",
        _is("ioc", _suspicious),
        _is("yara"),
        lambda a, b: os.path.basename(_exe(a)) == os.path.basename(md(b.finding, "path")),
        lambda a, b: (
            f"{_exe(a)} (pid {_pid(a)}) runs, and a copy named like it at {md(b.finding, 'path')} "
            f"carries '{md(b.finding, 'pattern')}'."
        ),
        "critical",
        25,
        ("T1496",),
    ),
    CorrelationRule(
        "ioc_process_network",
        "Suspicious process has network activity",
        _is("ioc", _serious),  # sockets are what browsers and daemons hold: only a serious suspect's mean C2
        _is("network"),
        _same_pid,
        lambda a, b: (
            f"The flagged process {_exe(a)} (pid {_pid(a)}) holds socket {b.id} (the socket's own pid "
            f"{md(b.finding, 'pid')}){_remote(b)}."
        ),
        lambda a, b: "critical" if a.assessment.verdict == "contain" else "high",
        20,
        ("T1071",),
    ),
    CorrelationRule(
        "ioc_exec_traced",
        "Suspicious process seen by the exec trace",
        _is("ioc", _suspicious),
        _is("ebpf_exec_trace", lambda i: bool(md(i.finding, "pid"))),
        lambda a, b: md(b.finding, "pid") == _pid(a),
        lambda a, b: f"The exec trace saw pid {_pid(a)} start ({md(b.finding, 'comm') or md(b.finding, 'command')}).",
        "high",
        10,
        ("T1059.004",),
    ),
    CorrelationRule(
        "ioc_exec_not_audited",
        "Suspicious process on a host without execution auditing",
        _is("ioc", _serious),
        _is("auditd", lambda i: i.id in ("auditd:execve:absent", "auditd:rules:missing")),
        lambda a, b: True,
        lambda a, b: f"{_exe(a)} ran while {b.id} holds: whatever it executed left no audit record.",
        "high",
        15,
        ("T1562.012",),
    ),
    CorrelationRule(
        "exec_from_exec_mount",
        "Suspicious process runs from a temporary mount that allows execution",
        _is("ioc", lambda i: _suspicious(i) and _exe(i).startswith(SCRATCH_ROOTS)),
        _is("mounts", lambda i: "noexec-missing" in i.id),
        lambda a, b: _exe(a).startswith(md(b.finding, "mount").rstrip("/") + "/"),
        lambda a, b: f"{md(b.finding, 'mount')} allows execution and {_exe(a)} runs from it.",
        "high",
        10,
        ("T1059.004",),
    ),
    CorrelationRule(
        "setid_binary_writable",
        "Set-id binary that any user can overwrite",
        _is("suid_sgid"),
        _is("world_writable", lambda i: not md(i.finding, "rule")),
        lambda a, b: a.id == b.id,
        lambda a, b: f"{a.id} runs with elevated rights and every user can rewrite it: root for anyone.",
        "critical",
        30,
        ("T1548.001",),
    ),
    CorrelationRule(
        "replaced_binary_running",
        "Replaced system binary is running",
        _is("integrity", lambda i: "binary_modified" in i.assessment.tags),
        lambda i: i.scanner == "ioc" or (i.scanner == "processes" and bool(i.finding.get("description"))),
        lambda a, b: (
            integrity_path(a.finding)
            == (_exe(b) if b.scanner == "ioc" else b.finding.get("description", "").split(" ")[0])
        ),
        lambda a, b: f"{integrity_path(a.finding)} differs from its package and runs now as pid {_pid(b) or b.id}.",
        "critical",
        20,
        ("T1554",),
    ),
    CorrelationRule(
        "suspect_module_without_lockdown",
        "Suspicious kernel module loaded with lockdown off",
        _is("modules", lambda i: i.assessment.verdict in ("contain", "investigate")),
        _is("kernel_hardening", lambda i: i.id == "kernel:lockdown:disabled"),
        lambda a, b: True,
        lambda a, b: (
            f"Module {a.id} is {a.assessment.verdict}-grade and kernel lockdown is off, so nothing stopped "
            "it from loading."
        ),
        "critical",
        25,
        ("T1547.006", "T1014"),
    ),
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
                cid = f"corr:{rule.rule}" if rule.per_host else f"corr:{rule.rule}:{a.id}"
                tags = [f"rule:{rule.rule}"] + [f"attack:{t}" for t in rule.techniques_for(a, b)]
                if cid in out:
                    out[cid]["related_finding_ids"] = sorted(set(out[cid]["related_finding_ids"]) | set(related))
                    out[cid]["tags"] += [t for t in tags if t not in out[cid]["tags"]]
                    continue
                out[cid] = {
                    "id": cid,
                    "title": rule.title,
                    "rationale": rule.rationale(a, b),
                    "related_finding_ids": related,
                    "risk_score_delta": rule.delta,
                    "tags": tags,
                    "severity": rule.severity_for(a, b),
                }
    return sorted(out.values(), key=lambda c: (-c["risk_score_delta"], c["id"]))
