"""Distribution families: which `os_id` belongs to which family, and each family's package tooling."""

from __future__ import annotations

FAMILY_BY_OS_ID = {
    "ubuntu": "debian",
    "debian": "debian",
    "linuxmint": "debian",
    "pop": "debian",
    "kali": "debian",
    "raspbian": "debian",
    "elementary": "debian",
    "zorin": "debian",
    "rhel": "rhel",
    "fedora": "rhel",
    "centos": "rhel",
    "rocky": "rhel",
    "almalinux": "rhel",
    "ol": "rhel",
    "amzn": "rhel",
}

# family -> how an analyst asks the package manager (owner of a path, verify a package, where it came from)
PACKAGE_TOOLS = {
    "debian": {
        "owner": "dpkg -S {path}",
        "verify": "dpkg -V {package}",
        "origin": "apt-cache policy {package}",
        "reinstall": "apt-get install --reinstall {package}",
    },
    "rhel": {
        "owner": "rpm -qf {path}",
        "verify": "rpm -V {package}",
        "origin": "dnf info {package}",
        "reinstall": "dnf reinstall {package}",
    },
}

DISTRO_NAMES = {"debian": "Debian/Ubuntu", "rhel": "RHEL/Fedora"}


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
