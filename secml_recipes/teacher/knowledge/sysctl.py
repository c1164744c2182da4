"""Kernel parameters sys-scan reads: stock values per family, what the value means, what a change breaks.

KernelParamScanner (always on) reads four /proc/sys paths; KernelHardeningScanner (--hardening) reads
eight more under ids `kernel:sysctl:<name>`. Both call any value other than their single `desired`
value a mismatch, even where the distribution's own default differs on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass

from secml_recipes.knowledge_files import STR, frozen, load_table, mapping, record, seq


@dataclass(frozen=True)
class Sysctl:
    name: str  # sysctl key
    stock: dict[str, tuple[str, ...]]  # family -> values a stock install has
    meaning: str  # what the scanner's desired value buys
    caveat: str  # what changing the stock value breaks, or "" when it is safe
    fix: str  # the change, when the host is not stock
    strictness: tuple[str, ...]  # values from weakest to strictest; () when the value is a choice, not a level


_ROW = record({"stock": mapping(seq(STR)), "meaning": STR, "caveat": STR, "fix": STR, "strictness": seq(STR)})
_EVIDENCE = record({"modules": seq(STR), "services": seq(STR), "check": STR})
_DATA = load_table(
    __package__, "data/sysctl.yaml", record({"sysctls": mapping(_ROW), "forwarding_evidence": _EVIDENCE})
)
SYSCTLS = {
    name: Sysctl(name, frozen(row["stock"]), row["meaning"], row["caveat"], row["fix"], frozen(row["strictness"]))
    for name, row in _DATA["sysctls"].items()
}
# What shows that a host forwards packets on purpose, and what to check when its scan shows nothing.
FORWARDING_MODULES = frozenset(_DATA["forwarding_evidence"]["modules"])
FORWARDING_SERVICES: tuple[str, ...] = frozen(_DATA["forwarding_evidence"]["services"])
FORWARDING_CHECK = " ".join(_DATA["forwarding_evidence"]["check"].split())


def sysctl_name(path: str) -> str:
    """/proc/sys/net/ipv4/conf/all/rp_filter -> net.ipv4.conf.all.rp_filter"""
    return path.removeprefix("/proc/sys/").replace("/", ".")


def is_stock_value(name: str, value: str, family: str) -> bool:
    row = SYSCTLS.get(name)
    return bool(row) and value in row.stock.get(family, ())


def stricter_than(name: str, value: str, desired: str) -> bool:
    """Whether `value` is stricter than the scanner's `desired` value (kptr_restrict 2 over 1): keep it."""
    order = SYSCTLS[name].strictness if name in SYSCTLS else ()
    return value in order and desired in order and order.index(value) > order.index(desired)


def forwarding_users(modules: frozenset[str], services: frozenset[str]) -> list[str]:
    """What on the host forwards packets: loaded modules and running or installed services from the evidence
    table (a trailing `*` in the table is a prefix)."""
    found = sorted(modules & FORWARDING_MODULES)
    for pattern in FORWARDING_SERVICES:
        if pattern.endswith("*"):
            found += sorted(s for s in services if s.startswith(pattern[:-1]))
        elif pattern in services:
            found.append(pattern)
    return list(dict.fromkeys(found))
