"""A package database shaped like a real distribution's: package names, versions, origins, the paths each
package owns and the service units it ships.

It answers the simulated package manager (`dpkg -S` / `rpm -qf`, `dpkg -V` / `rpm -V`, `apt-cache policy` /
`dnf info`) in the tool episodes. Which service units are the distribution's own is `units.py`'s question, answered
from the packages' real unit lists.
Versions are those of Ubuntu 24.04 / Debian 12 and Fedora 41 / RHEL 9 era packages; the origin is the
archive or vendor repository a genuine copy comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from secml_recipes.knowledge_files import STR, load_table, mapping, record, seq
from secml_recipes.teacher.knowledge import debian_files
from secml_recipes.teacher.knowledge.privileged import (
    STOCK_CAPABILITIES,
    STOCK_PRIVILEGED,
    THIRD_PARTY,
    canonical_path,
)


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    origin: str
    paths: tuple[str, ...] = ()
    units: tuple[str, ...] = field(default_factory=tuple)


_ROW = record({"name": STR, "version": STR, "origin": STR, "paths": seq(STR), "units": seq(STR)})
_DATA = load_table(
    __package__,
    "data/packages.yaml",
    record({"packages": mapping(seq(_ROW)), "vendor_packages": seq(_ROW), "origin_label": mapping(mapping(STR))}),
)


def _rows(rows: list[dict]) -> list[tuple]:
    """(name, version, origin, owned paths, service units) per package, in file order."""
    return [(r["name"], r["version"], r["origin"], tuple(r["paths"]), tuple(r["units"])) for r in rows]


# family -> package rows
_PACKAGES = {family: _rows(rows) for family, rows in _DATA["packages"].items()}

# Vendor repositories: packages that are not the distribution's but come from a known, signed source.
_VENDOR_PACKAGES = _rows(_DATA["vendor_packages"])

ORIGIN_LABEL = {
    (family, origin): label for family, labels in _DATA["origin_label"].items() for origin, label in labels.items()
}


def _index() -> dict[str, dict[str, Package]]:
    out: dict[str, dict[str, Package]] = {}
    for family, rows in _PACKAGES.items():
        table = out.setdefault(family, {})
        for name, version, origin, paths, units in rows + _VENDOR_PACKAGES:
            pkg = Package(name, version, origin, tuple(paths), tuple(units))
            for path in paths:
                table.setdefault(path, pkg)
    # Every stock privileged binary is owned by the package the privilege table names.
    for (family, path), row in list(STOCK_PRIVILEGED.items()) + list(STOCK_CAPABILITIES.items()):
        if path not in out[family]:
            out[family][path] = Package(row.package, "unknown", "main" if family == "debian" else "baseos", (path,))
    return out


PACKAGE_BY_PATH = _index()
_DEBIAN_BY_NAME = {pkg.name: pkg for pkg in PACKAGE_BY_PATH.get("debian", {}).values()}
VENDOR_ORIGINS = {row[2] for row in _VENDOR_PACKAGES}


def owning_package(path: str, family: str) -> Package | None:
    """The package that owns `path` (merged-/usr aware), like `dpkg -S` / `rpm -qf`; None when unowned. On
    Debian-family hosts, paths the table does not name are looked up in the real packages' file lists, and a
    file a maintainer script copied into place belongs to the package whose script did it."""
    table = PACKAGE_BY_PATH.get(family, {})
    found = table.get(path) or table.get(canonical_path(path))
    if found is not None or family != "debian":
        return found
    name = debian_files.FILES.get(debian_files.merged(path))
    name = name or (debian_files.INSTALLED_BY_SCRIPTS.get(path) or {}).get("package")
    if name is None:
        return None
    known = _DEBIAN_BY_NAME.get(name)
    version = known.version if known else debian_files.VERSIONS.get(name, "unknown")
    return Package(name, version, "main", (path,))


def is_vendor(pkg: Package) -> bool:
    return pkg.origin in VENDOR_ORIGINS


def origin_text(pkg: Package, family: str, distro: str) -> str:
    if is_vendor(pkg):
        return f"vendor repository {pkg.origin}"
    return ORIGIN_LABEL.get((family, pkg.origin), "{distro} archive").format(distro=distro)


def third_party_package(path: str) -> str | None:
    """The vendor package name of a known third-party privileged binary."""
    row = THIRD_PARTY.get(canonical_path(path))
    return row.package if row else None


def package_paths(name: str, family: str) -> list[str]:
    """Every path the package `name` owns on this family (the table's, then the real file list's), sorted."""
    paths = {p for p, pkg in PACKAGE_BY_PATH.get(family, {}).items() if pkg.name == name}
    if family == "debian":
        paths |= {p for p, owner in debian_files.FILES.items() if owner == name}
    return sorted(paths)
