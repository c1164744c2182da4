"""Distribution families: which `os_id` belongs to which family, and each family's package tooling."""

from __future__ import annotations

from secml_recipes.knowledge_files import STR, load_table, mapping, record

_TOOLS = record({"owner": STR, "verify": STR, "origin": STR, "reinstall": STR})
_DATA = load_table(
    __package__,
    "data/hosts.yaml",
    record({"family_by_os_id": mapping(STR), "package_tools": mapping(_TOOLS), "distro_names": mapping(STR)}),
)
FAMILY_BY_OS_ID: dict[str, str] = _DATA["family_by_os_id"]

PACKAGE_TOOLS: dict[str, dict[str, str]] = _DATA["package_tools"]

DISTRO_NAMES: dict[str, str] = _DATA["distro_names"]


def os_family(meta: dict) -> str:
    """'debian' or 'rhel' from a report's meta (os_id, then os_pretty); 'debian' when unknown, the most
    common family of the hosts sys-scan runs on."""
    os_id = str(meta.get("os_id", "")).lower()
    if os_id in FAMILY_BY_OS_ID:
        return FAMILY_BY_OS_ID[os_id]
    pretty = str(meta.get("os_pretty", "")).lower()
    for key, family in FAMILY_BY_OS_ID.items():
        if key in pretty or (key == "rhel" and "red hat" in pretty):
            return family
    return "debian"


def os_label(meta: dict) -> str:
    """The distribution as a person names it ('Ubuntu 24.04.3 LTS'), for rationales."""
    return str(meta.get("os_pretty") or meta.get("os_id") or DISTRO_NAMES[os_family(meta)])
