"""Kernel parameters sys-scan reads: stock values per family, what the value means, what a change breaks.

KernelParamScanner (always on) reads four /proc/sys paths; KernelHardeningScanner (--hardening) reads
eight more under ids `kernel:sysctl:<name>`. Both call any value other than their single `desired`
value a mismatch, even where the distribution's own default differs on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sysctl:
    name: str  # sysctl key
    stock: dict[str, tuple[str, ...]]  # family -> values a stock install has
    meaning: str  # what the scanner's desired value buys
    caveat: str  # what changing the stock value breaks, or "" when it is safe
    fix: str  # the change, when the host is not stock


SYSCTLS = {
    s.name: s
    for s in [
        Sysctl(
            "kernel.randomize_va_space",
            {"debian": ("2",), "rhel": ("2",)},
            "full address-space layout randomisation (stack, mmap, heap)",
            "",
            "set kernel.randomize_va_space = 2 in /etc/sysctl.d/ and find what lowered it",
        ),
        Sysctl(
            "kernel.kptr_restrict",
            {"debian": ("1",), "rhel": ("0", "1")},
            "kernel pointer addresses hidden from unprivileged users (/proc/kallsyms)",
            "",
            "set kernel.kptr_restrict = 1 in /etc/sysctl.d/",
        ),
        Sysctl(
            "net.ipv4.conf.all.rp_filter",
            {"debian": ("2",), "rhel": ("1", "2")},
            "reverse-path filtering: 1 strict, 2 loose (systemd's default in 50-default.conf); both drop "
            "spoofed packets from unroutable sources",
            "strict mode drops legitimate traffic on multi-homed hosts, asymmetric routes, VPN and policy routing",
            "set net.ipv4.conf.all.rp_filter = 2 (or 1 on a single-homed server) in /etc/sysctl.d/",
        ),
        Sysctl(
            "net.ipv4.ip_forward",
            {"debian": ("0",), "rhel": ("0",)},
            "packet forwarding between interfaces, needed only by routers, container and VM hosts",
            "Docker, Podman (rootful), libvirt, LXD, Kubernetes nodes and VPN servers turn it on and need it",
            "find the service that enabled forwarding; if none needs it, set net.ipv4.ip_forward = 0",
        ),
        Sysctl(
            "kernel.dmesg_restrict",
            {"debian": ("1",), "rhel": ("0", "1")},
            "kernel log readable by root only",
            "",
            "set kernel.dmesg_restrict = 1 in /etc/sysctl.d/",
        ),
        Sysctl(
            "kernel.kexec_load_disabled",
            {"debian": ("0",), "rhel": ("0",)},
            "kexec_load disabled until reboot (a one-way switch)",
            "kdump crash capture and kexec fast reboots stop working until the next boot",
            "set kernel.kexec_load_disabled = 1 only on hosts that use neither kdump nor kexec",
        ),
        Sysctl(
            "kernel.sysrq",
            {"debian": ("176", "438"), "rhel": ("16",)},
            "magic SysRq keys: 0 disables all; distributions enable a safe subset (sync, remount, reboot)",
            "0 removes the console's emergency sync/reboot keys",
            "set kernel.sysrq to the distribution's default",
        ),
        Sysctl(
            "net.ipv4.tcp_syncookies",
            {"debian": ("1",), "rhel": ("1",)},
            "SYN cookies protect listening sockets from SYN floods",
            "",
            "set net.ipv4.tcp_syncookies = 1 in /etc/sysctl.d/",
        ),
        Sysctl(
            "net.ipv4.conf.all.accept_redirects",
            {"debian": ("0", "1"), "rhel": ("0", "1")},
            "ICMP redirects let a router on the link change this host's routes",
            "",
            "set net.ipv4.conf.all.accept_redirects = 0 (and the default.* key) in /etc/sysctl.d/",
        ),
        Sysctl(
            "net.ipv4.conf.all.accept_source_route",
            {"debian": ("0",), "rhel": ("0",)},
            "source-routed packets choose their own path through this host",
            "",
            "set net.ipv4.conf.all.accept_source_route = 0 in /etc/sysctl.d/",
        ),
    ]
}


def sysctl_name(path: str) -> str:
    """/proc/sys/net/ipv4/conf/all/rp_filter -> net.ipv4.conf.all.rp_filter"""
    return path.removeprefix("/proc/sys/").replace("/", ".")


def is_stock_value(name: str, value: str, family: str) -> bool:
    row = SYSCTLS.get(name)
    return bool(row) and value in row.stock.get(family, ())
