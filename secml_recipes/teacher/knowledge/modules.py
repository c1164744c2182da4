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
ROOTKIT_MODULES = {
    "diamorphine",
    "reptile",
    "reptile_mod",
    "suterusu",
    "kovid",
    "hide_pid",
    "adore_ng",
    "enyelkm",
    "azazel",
    "bdvl",
    "puszek",
    "nurupo",
}

# Modules that show the host forwards or NATs traffic (what sys-scan-agent calls notable modules).
NOTABLE_MODULES = {
    "br_netfilter",
    "xt_MASQUERADE",
    "bridge",
    "iptable_nat",
    "binfmt_misc",
    "nf_nat",
    "veth",
    "overlay",
    "vxlan",
    "wireguard",
    "tun",
}


def vendor_module(name: str) -> str | None:
    for pattern, what in VENDOR_MODULES.items():
        if re.match(pattern, name):
            return what
    return None


def rootkit_module(name: str) -> bool:
    return name.lower() in ROOTKIT_MODULES


# /proc/sys/kernel/tainted bits as the kernel defines them (Documentation/admin-guide/tainted-kernels.rst):
# bit -> (letter, name, what it means). sys-scan 5.0.0 decodes bits 10-17 with wrong names (it calls bit 12
# SOFTWARE_INCOMPAT and bit 13 FIRMWARE_WORKAROUND), so its `taint_value` is read, never its `taint_flags`.
KERNEL_TAINT_BITS = {
    0: ("P", "PROPRIETARY_MODULE", "a proprietary module was loaded"),
    1: ("F", "FORCED_MODULE", "a module was force-loaded past its version check"),
    2: ("S", "CPU_OUT_OF_SPEC", "the CPU runs out of specification"),
    3: ("R", "FORCED_RMMOD", "a module was force-unloaded"),
    4: ("M", "MACHINE_CHECK", "a machine-check exception happened"),
    5: ("B", "BAD_PAGE", "a bad page was found"),
    6: ("U", "USER", "userspace asked for the taint"),
    7: ("D", "DIE", "the kernel died (oops)"),
    8: ("A", "OVERRIDDEN_ACPI_TABLE", "an ACPI table was overridden"),
    9: ("W", "WARN", "the kernel issued a warning"),
    10: ("C", "CRAP", "a staging driver was loaded"),
    11: ("I", "FIRMWARE_WORKAROUND", "a platform-firmware bug workaround is active"),
    12: ("O", "OOT_MODULE", "an out-of-tree module was loaded"),
    13: ("E", "UNSIGNED_MODULE", "an unsigned module was loaded"),
    14: ("L", "SOFTLOCKUP", "a soft lockup happened"),
    15: ("K", "LIVEPATCH", "the kernel was live-patched"),
    16: ("X", "AUX", "a distribution-defined taint"),
    17: ("T", "RANDSTRUCT", "built with the randstruct plugin"),
    18: ("N", "TEST", "a test module was loaded"),
}
MODULE_TAINTS = {0, 1, 3, 12, 13}  # the bits that say something about loaded modules

# In-tree modules that 5.0.0's module summary calls unsigned because it reads the first 2 MiB of a compressed
# module and their signature sits further in (the scanner's read bound, not a missing signature).
OVERSIZED_INTREE_MODULES = {"i915", "xe", "btrfs", "xfs", "amdgpu", "nvidia"}


def taint_bits(value: str) -> list[int]:
    """The set bits of a /proc/sys/kernel/tainted value ('' or garbage: none)."""
    number = int(value) if str(value).isdigit() else 0
    return [bit for bit in range(max(number.bit_length(), 1)) if number >> bit & 1]
