"""The judge's own knowledge, loaded from `data/` (never from the teacher's tables, so a mistake in those tables
cannot hide from it). Each file's header names its source and how to regenerate it."""

from __future__ import annotations

import re

from secml_recipes.knowledge_files import STR, load_table, mapping, record, seq

_PKG = __package__
_STRS = seq(STR)

UNITS = load_table(
    _PKG, "data/stock_units.yaml", record({"distribution": STR, "packages": mapping(STR), "units": mapping(STR)})
)
SETID = load_table(
    _PKG,
    "data/stock_setid.yaml",
    record({"distribution": STR, "paths": mapping(record({"package": STR, "bit": STR}))}),
)
GTFOBINS = load_table(_PKG, "data/gtfobins.yaml", record({"commit": STR, "binaries": mapping(_STRS)}))["binaries"]
_SYSCTL = record({"doc": STR}, {"order": _STRS, "numeric": {"enum": ["higher", "lower"]}})
SYSCTLS = load_table(_PKG, "data/sysctl_direction.yaml", record({"sysctls": mapping(_SYSCTL)}))["sysctls"]
_ROLE = record({"kind": STR, "why": STR, "units": _STRS, "breaking": {"oneOf": [{"const": "all"}, _STRS]}})
_ROLES = load_table(_PKG, "data/unit_roles.yaml", record({"directives": _STRS, "roles": mapping(_ROLE)}))
DIRECTIVES: list[str] = _ROLES["directives"]
ROLES: dict[str, dict] = _ROLES["roles"]
_EVIDENCE = load_table(
    _PKG,
    "data/evidence.yaml",
    record(
        {
            "scratch_dirs": _STRS,
            "benign_scratch": _STRS,
            "package_dirs": _STRS,
            "miner_names": _STRS,
            "injection": _STRS,
            "root_run_files": _STRS,
            "container_runtime": record({"processes": _STRS, "units": _STRS, "modules": _STRS}),
            "words": mapping(_STRS),
        }
    ),
)
SCRATCH_DIRS = tuple(_EVIDENCE["scratch_dirs"])
PACKAGE_DIRS = tuple(_EVIDENCE["package_dirs"])
MINER_NAMES = frozenset(_EVIDENCE["miner_names"])
RUNTIME = _EVIDENCE["container_runtime"]


def _any(patterns: list[str]) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.I)


BENIGN_SCRATCH = _any(_EVIDENCE["benign_scratch"])
INJECTION = _any(_EVIDENCE["injection"])
ROOT_RUN_FILES = _any(_EVIDENCE["root_run_files"])
WORDS = {name: _any(patterns) for name, patterns in _EVIDENCE["words"].items() if "{pid}" not in "".join(patterns)}
PRESERVE_PID_TEMPLATES: list[str] = _EVIDENCE["words"]["preserve_pid"]


def preserve_pid(pid: str) -> re.Pattern:
    """Words that preserve process `pid` (its executable or its memory)."""
    return _any([p.replace("{pid}", re.escape(pid)) for p in PRESERVE_PID_TEMPLATES])


def unit_template(unit: str) -> str:
    """getty@tty1.service -> getty@.service; a unit name without a type gets .service."""
    unit = unit if re.search(r"\.(service|socket|timer|mount|path|target)$", unit) else unit + ".service"
    return re.sub(r"@[^.]+\.", "@.", unit)


def unit_roles(unit: str) -> list[str]:
    """The roles (unit_roles.yaml) a unit plays."""
    name = unit_template(unit)
    return [role for role, row in ROLES.items() if name in row["units"]]


def sysctl_rank(name: str, value: str) -> float | None:
    """How strict `value` is for sysctl `name` (higher = stricter), or None when the docs give no order."""
    for pattern, row in SYSCTLS.items():
        if re.fullmatch(re.escape(pattern).replace(r"\*", r"[\w-]+"), name):
            if "order" in row:
                return float(row["order"].index(value)) if value in row["order"] else None
            try:
                number = float(value)
            except ValueError:
                return None
            return number if row["numeric"] == "higher" else -number
    return None


def canonical_path(path: str) -> str:
    """Merged /usr: /bin/x -> /usr/bin/x (how the package tables name it)."""
    return re.sub(r"^/(bin|sbin|lib|lib64)/", r"/usr/\1/", path)


def gtfobins_functions(path: str) -> list[str]:
    """What GTFOBins says `path`'s binary gives when set-uid ([] when it is not listed); python3.11 -> python."""
    name = path.rsplit("/", 1)[-1]
    for candidate in (name, re.sub(r"[\d.]+$", "", name)):
        if candidate in GTFOBINS:
            return GTFOBINS[candidate]
    return []
