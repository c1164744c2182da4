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


_ROW = record({"stock": mapping(seq(STR)), "meaning": STR, "caveat": STR, "fix": STR})
_DATA = load_table(__package__, "data/sysctl.yaml", record({"sysctls": mapping(_ROW)}))
SYSCTLS = {
    name: Sysctl(name, frozen(row["stock"]), row["meaning"], row["caveat"], row["fix"])
    for name, row in _DATA["sysctls"].items()
}


def sysctl_name(path: str) -> str:
    """/proc/sys/net/ipv4/conf/all/rp_filter -> net.ipv4.conf.all.rp_filter"""
    return path.removeprefix("/proc/sys/").replace("/", ".")


def is_stock_value(name: str, value: str, family: str) -> bool:
    row = SYSCTLS.get(name)
    return bool(row) and value in row.stock.get(family, ())
