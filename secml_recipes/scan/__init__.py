"""sys-scan, modelled: the machines it scans (`host`, `catalog`), what a scanner version reports about
them (`v5_0_0`), what that version can write at all (`spec_5_0_0`), its NDJSON stream (`ndjson`) and the
older report shapes converted to the current one (`legacy`).

A scanner version is one entry of `VERSIONS`: a module with `VERSION`, `GIT_COMMIT`, `generate(host)` and a
spec module with `report_defects(report)`. Only 5.0.0 (git a2ceff7, the release behind the real fixture)
is modelled; a later version is added as its own pair of modules, checked against its own source, never
by mixing behaviours into 5.0.0's.
"""

from __future__ import annotations

from types import ModuleType

from secml_recipes.scan import spec_5_0_0, v5_0_0

VERSIONS: dict[str, tuple[ModuleType, ModuleType]] = {"5.0.0": (v5_0_0, spec_5_0_0)}
DEFAULT_VERSION = "5.0.0"


def scanner_version(version: str) -> tuple[ModuleType, ModuleType]:
    """(behaviour module, spec module) of a modelled sys-scan version, or a ValueError naming the ones there are."""
    try:
        return VERSIONS[version]
    except KeyError:
        raise ValueError(f"sys-scan {version!r} is not modelled; available: {', '.join(VERSIONS)}") from None
