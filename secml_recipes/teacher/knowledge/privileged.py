"""Privileged binaries a stock distribution ships, with which bit, for whom and why.

sys-scan's SUID scanner reports "SUID or SGID bit set" without saying which bit or which owner, and marks
only 14 basenames as expected (passwd, sudo, chsh, chfn, newgrp, gpasswd, mount, umount, su, pkexec,
traceroute6.iputils, ping, ping6, ssh-agent). Every other stock binary arrives as medium. These tables
say what the package really installs, so the teacher never tells anyone to strip a bit that a stock
feature needs (`chmod u-s` on an SGID binary does nothing; on fusermount3 it breaks every FUSE mount).

Paths are the merged-/usr paths: `/bin/x` and `/sbin/x` are looked up as `/usr/bin/x` and `/usr/sbin/x`.
"""

from __future__ import annotations

from dataclasses import dataclass

from secml_recipes.knowledge_files import STR, frozen, load_table, record, seq


@dataclass(frozen=True)
class PrivilegedBinary:
    family: str  # "debian" (Debian, Ubuntu) or "rhel" (RHEL, Fedora)
    path: str
    bit: str  # "suid", "sgid" or "suid+sgid"
    owner: str  # the user a SUID binary runs as, or the group an SGID binary runs with
    package: str
    purpose: str  # why the package sets the bit
    breaks: str  # what stops working if someone removes it


@dataclass(frozen=True)
class CapabilityBinary:
    family: str
    path: str
    capabilities: str
    package: str
    purpose: str


@dataclass(frozen=True)
class ThirdPartyBinary:
    path: str
    vendor: str
    package: str
    bit: str
    owner: str
    purpose: str
    source: str  # where a genuine copy comes from, to compare against


_DATA = load_table(
    __package__,
    "data/privileged.yaml",
    record(
        {
            "stock": seq(record(dict.fromkeys(PrivilegedBinary.__dataclass_fields__, STR))),
            "capabilities": seq(record(dict.fromkeys(CapabilityBinary.__dataclass_fields__, STR))),
            "third_party": seq(record(dict.fromkeys(ThirdPartyBinary.__dataclass_fields__, STR))),
            "suid_scan_roots": seq(STR),
            "local_prefixes": seq(STR),
            "shell_escape_setid": seq(STR),
        }
    ),
)

STOCK_PRIVILEGED = {(row["family"], row["path"]): PrivilegedBinary(**row) for row in _DATA["stock"]}
# Binaries that get file capabilities from their package (getcap shows them) instead of a SUID bit.
STOCK_CAPABILITIES = {(row["family"], row["path"]): CapabilityBinary(**row) for row in _DATA["capabilities"]}
THIRD_PARTY = {row["path"]: ThirdPartyBinary(**row) for row in _DATA["third_party"]}

# Directories the SUID scanner walks (SuidScanner.cpp), and where an administrator installs local builds.
SUID_SCAN_ROOTS: tuple[str, ...] = frozen(_DATA["suid_scan_roots"])
LOCAL_PREFIXES: tuple[str, ...] = frozen(_DATA["local_prefixes"])
# Programs that give a shell or any file when set-id (GTFOBins' SUID entries); a trailing * is a prefix.
SHELL_ESCAPE_SETID: tuple[str, ...] = frozen(_DATA["shell_escape_setid"])


def canonical_path(path: str) -> str:
    """Merged-/usr spelling: /bin/x -> /usr/bin/x, /sbin/x -> /usr/sbin/x (the same file on modern distros)."""
    for old, new in (("/bin/", "/usr/bin/"), ("/sbin/", "/usr/sbin/")):
        if path.startswith(old):
            return new + path[len(old) :]
    return path


def stock_privileged(path: str, family: str) -> PrivilegedBinary | None:
    return STOCK_PRIVILEGED.get((family, canonical_path(path)))


def stock_elsewhere(path: str, family: str) -> PrivilegedBinary | None:
    """The row of another distribution family that ships `path` set-id (a Debian binary on a RHEL host)."""
    for (other, p), row in STOCK_PRIVILEGED.items():
        if other != family and p == canonical_path(path):
            return row
    return None


def stock_in_any_family(path: str) -> PrivilegedBinary | None:
    """The row of any distribution family that ships `path` set-id."""
    return next((row for (_, p), row in STOCK_PRIVILEGED.items() if p == canonical_path(path)), None)


def stock_capability(path: str, family: str) -> CapabilityBinary | None:
    return STOCK_CAPABILITIES.get((family, canonical_path(path)))


def third_party(path: str) -> ThirdPartyBinary | None:
    return THIRD_PARTY.get(canonical_path(path))


def bit_phrase(bit: str, owner: str) -> str:
    """'SGID shadow', 'SUID root', 'SUID+SGID daemon': how an analyst writes the mode."""
    return f"{bit.upper()} {owner}"


def shell_escape(path: str) -> str | None:
    """The GTFOBins name `path` matches (find, python3.12 -> python*), or None."""
    name = path.rsplit("/", 1)[-1]
    for entry in SHELL_ESCAPE_SETID:
        if name == entry or (entry.endswith("*") and name.startswith(entry[:-1])):
            return entry
    return None
