"""Service units: which ones a distribution's packages ship, and which ones sandboxing would break.

`packaged_unit` answers "is this the distribution's own unit?" from the unit files the packages really ship
(`scan/catalog/packaged_units.yaml`, read from the .deb files and the RPM spec files; the generator draws its
stock units from the same list). `breaking_class` answers "what does sys-scan's recommended directive break on
this unit?" from `data/unit_classes.yaml` (login sessions, the system bus, display managers, package updates).
"""

from __future__ import annotations

from dataclasses import dataclass

from secml_recipes.knowledge_files import STR, load_table, mapping, record, seq
from secml_recipes.scan.catalog import packaged_unit_package

ALL_DIRECTIVES = "*"


@dataclass(frozen=True)
class UnitClass:
    name: str
    units: tuple[str, ...]
    directives: tuple[str, ...]  # sys-scan keys never to advise, or ("*",) for all
    what: str
    reason: str

    def forbids(self, key: str) -> bool:
        return ALL_DIRECTIVES in self.directives or key in self.directives


_CLASS = record({"units": seq(STR), "directives": seq(STR), "what": STR, "reason": STR})
_DATA = load_table(__package__, "data/unit_classes.yaml", record({"classes": mapping(_CLASS)}))
UNIT_CLASSES = [
    UnitClass(name, tuple(row["units"]), tuple(row["directives"]), " ".join(row["what"].split()), row["reason"])
    for name, row in _DATA["classes"].items()
]


def _template(unit: str) -> str:
    """getty@tty1.service -> getty@.service (the template systemd instantiates)."""
    if "@" not in unit:
        return unit
    name, _, rest = unit.partition("@")
    return f"{name}@.{rest.rsplit('.', 1)[-1]}"


def _matches(unit: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return unit.startswith(pattern[:-1])
    return unit == pattern or _template(unit) == pattern


def packaged_unit(unit: str, family: str) -> str | None:
    """The package of `family` ('debian' or 'rhel') that ships `unit` (a template covers its instances, an alias
    its target), or None for a unit no package of that family ships: a local or third-party unit."""
    return packaged_unit_package(unit, family)


def breaking_class(unit: str, key: str) -> UnitClass | None:
    """The class of `unit` for which sys-scan's directive `key` breaks the host, or None when it is safe to try."""
    for name in (unit, _template(unit)):
        for cls in UNIT_CLASSES:
            if cls.forbids(key) and any(_matches(name, p) for p in cls.units):
                return cls
    return None
