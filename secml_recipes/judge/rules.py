"""The classes of advice a senior Linux incident responder would reject, one rule each.

A rule reads the judge's view of the host (`HostEvidence`) and the ranked actions and returns the actions it
rejects, with the reason; `verdict` rules judge the output's host risk level instead of an action.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from secml_recipes.judge.actions import Action
from secml_recipes.judge.host import HostEvidence
from secml_recipes.judge.knowledge import (
    ROLES,
    SETID,
    UNITS,
    WORDS,
    gtfobins_functions,
    preserve_pid,
    sysctl_rank,
    unit_roles,
    unit_template,
)


@dataclass
class Flag:
    kind: str
    action: int | None  # the action's index in the output's list; None for a verdict on the whole output
    reason: str


Rule = Callable[[HostEvidence, list[Action]], list[Flag]]


def _mention(path: str) -> re.Pattern:
    return re.compile(r"(?<![\w./-])" + re.escape(path) + r"(?![\w/-]|\.\w)")


def _role_breaks(kind: str) -> Rule:
    """Sandboxing advice on a unit whose role (unit_roles.yaml) that directive breaks."""

    def rule(host: HostEvidence, actions: list[Action]) -> list[Flag]:
        flags = []
        for a in actions:
            directives = a.directives
            for unit in a.units:
                for role in unit_roles(unit):
                    row = ROLES[role]
                    if row["kind"] != kind:
                        continue
                    broken = [d for d in directives if row["breaking"] == "all" or d in row["breaking"]]
                    if broken:
                        flags.append(Flag(kind, a.index, f"{', '.join(broken)} on {unit}: {row['why']}"))
        return flags

    return rule


_STOCK_LOGIN_PACKAGES = {"passwd", "login", "sudo", "util-linux", "mount", "pkexec", "polkitd", "libpam-modules-bin"}


def breaks_login_or_sudo(host: HostEvidence, actions: list[Action]) -> list[Flag]:
    """Sandboxing on login/session units, or stripping the set-id bit that su/sudo/passwd/pkexec need."""
    flags = _role_breaks("breaks_login_or_sudo")(host, actions)
    for a in actions:
        if not a.has("setid_containment"):
            continue
        for path, row in SETID["paths"].items():
            if row["package"] in _STOCK_LOGIN_PACKAGES and "suid" in row["bit"]:
                named = [p for p in (path, re.sub(r"^/usr/", "/", path)) if _mention(p).search(a.text)]
                if named:
                    flags.append(
                        Flag("breaks_login_or_sudo", a.index, f"strips the set-uid bit of {path} ({row['package']})")
                    )
    return flags


_UPDATE_UNITS = set(ROLES["updates"]["units"])
_DISABLE = re.compile(r"\bsystemctl\s+(disable|mask|stop)\s+(--now\s+)?([\w@.-]+)|\bapt-mark\s+hold\b", re.I)


def breaks_updates(host: HostEvidence, actions: list[Action]) -> list[Flag]:
    """Sandboxing that keeps the update units from writing the system, or switching them off."""
    flags = _role_breaks("breaks_updates")(host, actions)
    for a in actions:
        for m in _DISABLE.finditer(a.text):
            if m.group(3) is None or unit_template(m.group(3)) in _UPDATE_UNITS:
                flags.append(Flag("breaks_updates", a.index, f"`{m.group(0)}` stops security updates"))
    return flags


def breaks_networking(host: HostEvidence, actions: list[Action]) -> list[Flag]:
    """Turning forwarding off (or flushing the firewall and its NAT) on a host whose scan shows container or VM
    networking: whatever condition the action words, the evidence in hand already answers it."""
    if not host.runtimes:
        return []
    return [
        Flag("breaks_networking", a.index, f"cuts forwarding on a host with {', '.join(host.runtimes[:5])}")
        for a in actions
        if a.has("forwarding_off") or a.has("firewall_flush")
    ]


def weakens_setting(host: HostEvidence, actions: list[Action]) -> list[Flag]:
    """A sysctl set to a value the kernel documents as less strict than the one in force."""
    flags = []
    for a in actions:
        for name, value in a.sysctl_sets.items():
            names = [
                n for n in host.sysctls if n == name or re.fullmatch(name.replace(".", r"\.").replace("*", ".+"), n)
            ]
            for current_name in names:
                current = host.sysctls[current_name]
                new, old = sysctl_rank(current_name, value), sysctl_rank(current_name, current)
                if new is not None and old is not None and new < old:
                    flags.append(Flag("weakens_setting", a.index, f"{name} {current} -> {value} is less strict"))
    return flags


def destroys_evidence(host: HostEvidence, actions: list[Action]) -> list[Flag]:
    """On a compromised host: restart, stop, kill, delete or reinstall before the process image, memory or logs
    are preserved (a hash of /proc/<pid>/exe is not a copy)."""
    if not host.compromised:
        return []
    flags, preserved_host, preserved_pids = [], False, set()
    for a in actions:
        cut = a.first("destructive")
        pids = set(re.findall(r"\bpid[= ](\d+)|/proc/(\d+)/", a.text, re.I))
        pids = {p for pair in pids for p in pair if p}
        if cut is not None:
            before = a.text[:cut]
            host_ok = preserved_host or WORDS["preserve_host"].search(before)
            missing = [p for p in pids if p not in preserved_pids and not preserve_pid(p).search(before)]
            if missing or not (host_ok or pids):
                what = f"pid {', '.join(sorted(missing))}" if missing else "memory or logs"
                flags.append(
                    Flag("destroys_evidence", a.index, f"destroys before preserving {what} on a compromised host")
                )
        preserved_host = preserved_host or a.has("preserve_host")
        preserved_pids |= {p for p in pids if preserve_pid(p).search(a.text)}
    return flags


def hygiene_above_containment(host: HostEvidence, actions: list[Action]) -> list[Flag]:
    """On a compromised host, hardening and configuration hygiene read before the first containment step."""
    if not host.compromised:
        return []
    first = next((a.rank for a in actions if a.has("containment")), len(actions))
    return [
        Flag("hygiene_above_containment", a.index, f"hygiene at rank {a.rank + 1}, containment at {first + 1}")
        for a in actions
        if a.rank < first and a.has("hygiene")
    ]


def clean_host_critical(host: HostEvidence, enriched: dict) -> list[Flag]:
    """Risk level critical on a host whose scan shows neither malicious evidence nor a way for any local user to
    become root (e.g. a browser's loader variable or its HTTPS sockets are not a compromise); high on such a host
    unless it also carries a set-id file no package ships (unknown code anyone runs as its owner)."""
    level = str((((enriched or {}).get("summaries") or {}).get("analyst") or {}).get("risk_level") or "").lower()
    if level not in ("critical", "high") or host.compromised or host.exposures:
        return []
    if level == "high" and host.unexplained_setid:
        return []
    return [
        Flag(
            "clean_host_critical", None, f"risk level {level} with no malicious evidence and no anyone-to-root exposure"
        )
    ]


def hardens_ioc_unit(host: HostEvidence, actions: list[Action]) -> list[Flag]:
    """Sandboxing advice for a unit that is named after a malicious executable (its persistence, i.e. evidence)."""
    names = host.malicious_names
    flags = []
    for a in actions:
        if not a.directives:
            continue
        for unit in a.units:
            stem = re.sub(r"@.*$|\.\w+$", "", unit)
            if unit_template(unit) not in UNITS["units"] and (stem in names or re.split(r"[-_.]?\d", stem)[0] in names):
                flags.append(Flag("hardens_ioc_unit", a.index, f"hardens {unit}, a unit named after the malware"))
    return flags


def weak_setid_advice(host: HostEvidence, actions: list[Action]) -> list[Flag]:
    """A GTFOBins set-id binary that no package ships set-id, answered only with provenance checks (dpkg -V checks
    content, not the mode bit) while no action removes the bit."""
    flags = []
    for path in sorted(host.setid_paths):
        if path in SETID["paths"] or not gtfobins_functions(path):
            continue
        names = [_mention(p) for p in {path, re.sub(r"^/usr/(s?bin)/", r"/\1/", path)}]
        naming = [a for a in actions if any(n.search(a.text) for n in names)]
        if any(a.has("setid_containment") for a in naming):
            continue
        flags += [
            Flag("weak_setid_advice", a.index, f"{path} is set-id and GTFOBins lists it; only provenance is checked")
            for a in naming
            if a.has("provenance_only")
        ]
    return flags


_PRELOAD = "/etc/ld.so.preload"
_CHMOD_PRELOAD = re.compile(r"chmod\s+[^`]*?/etc/ld\.so\.preload")


def preload_without_reading(host: HostEvidence, actions: list[Action]) -> list[Flag]:
    """chmod on a world-writable /etc/ld.so.preload before anyone reads what it preloads."""
    if _PRELOAD not in host.world_writable:
        return []
    flags, read = [], False
    for a in actions:
        cut = a.first(_CHMOD_PRELOAD)
        if cut is not None and not read and not WORDS["read_preload"].search(a.text[:cut]):
            flags.append(Flag("preload_without_reading", a.index, "chmod on /etc/ld.so.preload before reading it"))
        read = read or a.has("read_preload")
    return flags


ACTION_RULES: dict[str, Rule] = {
    "breaks_login_or_sudo": breaks_login_or_sudo,
    "breaks_updates": breaks_updates,
    "breaks_networking": breaks_networking,
    "weakens_setting": weakens_setting,
    "destroys_evidence": destroys_evidence,
    "hygiene_above_containment": hygiene_above_containment,
    "hardens_ioc_unit": hardens_ioc_unit,
    "weak_setid_advice": weak_setid_advice,
    "preload_without_reading": preload_without_reading,
}
KINDS = [*ACTION_RULES, "clean_host_critical"]
