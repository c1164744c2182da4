"""Kernel modules: vendor modules that are out-of-tree or unsigned by design, known rootkit module names,
and modules whose presence says something about the host's role."""

from __future__ import annotations

import re

# Out-of-tree modules built by DKMS or a vendor installer: unsigned unless the owner enrolled a MOK key.
VENDOR_MODULES = {
    r"^nvidia(_drm|_modeset|_uvm|_peermem)?$": "NVIDIA's proprietary GPU driver",
    r"^vbox(drv|netflt|netadp|pci)$": "VirtualBox's host driver",
    r"^(zfs|spl|zavl|zcommon|znvpair|zunicode|icp|zlua|zzstd)$": "OpenZFS (DKMS or Ubuntu's signed build)",
    r"^v4l2loopback$": "v4l2loopback virtual camera (DKMS)",
    r"^evdi$": "DisplayLink's evdi driver (DKMS)",
    r"^(wl|8821cu|8812au|88x2bu|rtl88x2bu)$": "an out-of-tree Wi-Fi driver (DKMS)",
    r"^vmw_(vmci|vsock_vmci_transport)$|^vmmon$|^vmnet$": "VMware Workstation's host modules",
    r"^(falcon_lsm_serviceable|crowdstrike.*)$": "CrowdStrike Falcon sensor",
    r"^(acpi_call|tp_smapi)$": "laptop power-management module (DKMS)",
}

# Names of public Linux LKM rootkits (Diamorphine, Reptile, Suterusu, KoviD, ...).
ROOTKIT_MODULES = {"diamorphine", "reptile", "reptile_mod", "suterusu", "kovid", "hide_pid", "adore_ng",
                   "enyelkm", "azazel", "bdvl", "puszek", "nurupo"}

# Modules that show the host forwards or NATs traffic (what sys-scan-agent calls notable modules).
NOTABLE_MODULES = {"br_netfilter", "xt_MASQUERADE", "bridge", "iptable_nat", "binfmt_misc", "nf_nat", "veth",
                   "overlay", "vxlan", "wireguard", "tun"}


def vendor_module(name: str) -> str | None:
    for pattern, what in VENDOR_MODULES.items():
        if re.match(pattern, name):
            return what
    return None


def rootkit_module(name: str) -> bool:
    return name.lower() in ROOTKIT_MODULES
