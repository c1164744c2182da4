"""Regenerates the judge's data files that come from real artifacts rather than from reading documentation.

- `data/stock_units.yaml` and `data/stock_setid.yaml`: the systemd units and the set-id files that Debian's own
  packages install, read with `apt-get download` + `dpkg-deb -c` (the mode column shows the set-id bits);
- `data/gtfobins.yaml`: the binaries GTFOBins lists with a `suid` context, from the front matter of
  `_gtfobins/*` in a clone of github.com/GTFOBins/GTFOBins.github.io.

    python -m secml_recipes.judge.refresh units            # needs apt-get and dpkg-deb (Debian/Ubuntu)
    python -m secml_recipes.judge.refresh gtfobins --repo PATH_TO_GTFOBINS_GIT
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from datetime import date
from pathlib import Path

import yaml

DATA = Path(__file__).with_name("data")

# Packages whose units a Debian/Ubuntu host runs (base system, desktop, update, container and VM stacks).
UNIT_PACKAGES = [
    "systemd", "systemd-timesyncd", "systemd-resolved", "udev", "util-linux", "openssh-server", "cron", "anacron",
    "unattended-upgrades", "packagekit", "gdm3", "lightdm", "sddm", "dbus", "dbus-user-session", "polkitd", "udisks2",
    "accountsservice", "network-manager", "rsyslog", "apt", "e2fsprogs", "keyboard-configuration", "console-setup",
    "cloud-init", "modemmanager", "colord", "apparmor", "auditd", "cups-daemon", "cups-browsed", "avahi-daemon",
    "bluez", "fwupd", "smartmontools", "chrony", "containerd", "docker.io", "libvirt-daemon-system", "snapd", "lvm2",
    "mdadm", "irqbalance", "rtkit", "upower", "power-profiles-daemon", "switcheroo-control", "wpasupplicant",
    "nftables", "iptables", "ufw", "firewalld", "qemu-guest-agent", "open-vm-tools", "kerneloops", "sysstat",
    "logrotate", "man-db", "dpkg", "plymouth", "lxc", "incus", "podman", "postfix", "nginx", "apache2",
    "openvpn", "wireguard-tools", "thermald", "ifupdown", "networkd-dispatcher", "blk-availability",
]  # fmt: skip
# Packages that install set-id programs (dpkg-statoverride entries come from postinst, not the archive: see
# the file's header).
SETID_PACKAGES = [
    "passwd", "login", "mount", "util-linux", "sudo", "pkexec", "policykit-1", "fuse3", "fuse", "openssh-client",
    "iputils-ping", "dbus", "libpam-modules-bin", "ntfs-3g", "xserver-xorg-legacy", "uidmap", "at", "cron",
    "chromium-sandbox", "bsd-mailx", "exim4-daemon-light", "postfix", "screen", "mtr-tiny", "traceroute",
    "iputils-tracepath", "kdesu", "libutempter0", "unix-chkpwd", "policykit-1-gnome", "lxc", "libvirt-daemon",
    "firejail", "bubblewrap", "procmail", "dma", "ppp", "nfs-common", "cifs-utils", "virtualbox",
]  # fmt: skip
UNIT_DIR = re.compile(r"^\./(?:usr/)?lib/systemd/system/([^/]+\.(?:service|socket|timer|target|mount|path))$")


def _download(packages: list[str], into: Path) -> list[Path]:
    """Each package that the configured archive has a candidate for, as a .deb in `into` (others are skipped)."""
    policy = subprocess.run(["apt-cache", "policy", *packages], capture_output=True, text=True, check=True).stdout
    known, name = [], None
    for line in policy.splitlines():
        if line and not line.startswith(" "):
            name = line.rstrip(":")
        elif name and line.strip().startswith("Candidate:") and line.split()[-1] != "(none)":
            known.append(name)
    subprocess.run(["apt-get", "download", *known], cwd=into, capture_output=True, check=True)
    return sorted(into.glob("*.deb"))


def _contents(deb: Path) -> list[tuple[str, str]]:
    """(mode, path) of every file in the package, as `dpkg-deb -c` lists it."""
    out = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    return [(line.split()[0], line.split()[5]) for line in out.splitlines() if len(line.split()) >= 6]


def _field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True).stdout.strip()


_ASSIGN = re.compile(r"^\s*(\w+)=[\"']?([^\"'\s;]+)", re.M)
_SETID_SCRIPT = re.compile(
    r"dpkg-statoverride\s+--update\s+--add\s+\S+\s+\S+\s+(\S+)\s+(\S+)|chmod\s+(\S+)\s+(\S+)"
    r"|set_perms\s+\S+\s+\S+\s+(\S+)\s+(\S+)"  # the helper polkit's and others' postinst define
)


def _postinst_setid(deb: Path) -> dict[str, str]:
    """Set-id modes the package's postinst gives (dpkg-statoverride --add, chmod 4755): path -> bit."""
    script = subprocess.run(["dpkg-deb", "-I", str(deb), "postinst"], capture_output=True, text=True).stdout
    values = dict(_ASSIGN.findall(script))

    def expand(word: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(0)), word.strip("\"'"))

    out = {}
    for m in _SETID_SCRIPT.finditer(script):
        mode = expand(m.group(1) or m.group(3) or m.group(5))
        path = expand(m.group(2) or m.group(4) or m.group(6))
        if re.fullmatch(r"[0-7]{4}", mode) and path.startswith("/") and int(mode[0]) & 6:
            out[path] = "+".join(b for b, v in (("suid", 4), ("sgid", 2)) if int(mode[0]) & v)
    return out


def _distribution() -> str:
    info = dict(
        line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
    )  # the archive apt-get reads is this machine's
    return info.get("PRETTY_NAME", "unknown").strip('"')


def _write(name: str, header: str, body: dict) -> None:
    text = "".join(f"# {line}\n" if line else "#\n" for line in header.strip().splitlines())
    (DATA / name).write_text(text + yaml.safe_dump(body, sort_keys=True, width=120))
    print(f"wrote {DATA / name}")


def refresh_units() -> None:
    units: dict[str, str] = {}
    setid: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        debs = _download(sorted(set(UNIT_PACKAGES + SETID_PACKAGES)), Path(tmp))
        versions = {}
        for deb in debs:
            package = _field(deb, "Package")
            versions[package] = _field(deb, "Version")
            for mode, path in _contents(deb):
                match = UNIT_DIR.match(path)
                if match and package in UNIT_PACKAGES:
                    units.setdefault(match.group(1), package)
                if mode.startswith("-") and ("s" in mode[3] or "s" in mode[6]):
                    bit = "+".join(b for b, i in (("suid", 3), ("sgid", 6)) if mode[i] == "s")
                    canonical = "/usr" + path[1:] if re.match(r"^\./(bin|sbin|lib)/", path) else path[1:]
                    setid[canonical] = {"package": package, "bit": bit}
            for path, bit in _postinst_setid(deb).items():
                setid.setdefault(
                    "/usr" + path if re.match(r"^/(bin|sbin|lib)/", path) else path, {"package": package, "bit": bit}
                )
    distribution = _distribution()
    command = "python -m secml_recipes.judge.refresh units"
    _write(
        "stock_units.yaml",
        f"""
systemd units the distribution's own packages install (lib/systemd/system/ and usr/lib/systemd/system/).
Source: `apt-get download` of {len(versions)} packages from the {distribution} archive, listed with `dpkg-deb -c`,
on {date.today().isoformat()}. Regenerate: `{command}` (on a Debian/Ubuntu machine).
To edit: do not edit by hand; change UNIT_PACKAGES in secml_recipes/judge/refresh.py and regenerate.
unit -> the package that ships it.""",
        {"distribution": distribution, "packages": versions, "units": dict(sorted(units.items()))},
    )
    _write(
        "stock_setid.yaml",
        f"""
Files that the distribution's packages install with a set-uid or set-gid bit. Source: the mode column of
`dpkg-deb -c` and the packages' postinst scripts (`dpkg-statoverride --add`, `chmod 4755`, read with
`dpkg-deb -I DEB postinst`) ({distribution} archive, {date.today().isoformat()}).
Regenerate: `{command}`. Paths are merged-/usr paths (/bin/x is /usr/bin/x).
To edit: do not edit by hand; change SETID_PACKAGES in secml_recipes/judge/refresh.py and regenerate.""",
        {"distribution": distribution, "paths": dict(sorted(setid.items()))},
    )


def _front_matter(text: str) -> dict:
    parts = text.split("---", 2)
    return (yaml.safe_load(parts[1]) if len(parts) == 3 else yaml.safe_load(text)) or {}


def refresh_gtfobins(repo: Path) -> None:
    git = ["git", "--git-dir" if (repo / "HEAD").exists() and not (repo / ".git").exists() else "-C", str(repo)]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    names = subprocess.run(
        [*git, "ls-tree", "--name-only", "HEAD", "_gtfobins/"], capture_output=True, text=True, check=True
    ).stdout.split()
    binaries: dict[str, list[str]] = {}
    for name in names:
        text = subprocess.run([*git, "show", f"HEAD:{name}"], capture_output=True, text=True, check=True).stdout
        functions = _front_matter(text).get("functions") or {}
        suid = sorted(
            function
            for function, entries in functions.items()
            for entry in entries or []
            if isinstance(entry, dict) and "suid" in (entry.get("contexts") or {})
        )
        if suid:
            binaries[Path(name).name.removesuffix(".md")] = sorted(set(suid))
    _write(
        "gtfobins.yaml",
        f"""
Binaries that GTFOBins lists with a `suid` context. Source: https://gtfobins.github.io, the front matter of
_gtfobins/* in github.com/GTFOBins/GTFOBins.github.io at commit {commit}.
With the set-uid bit they give their owner's rights (a shell, a file read or write).
binary -> the GTFOBins functions that work when it is set-uid. Regenerate: clone that repository, then
`python -m secml_recipes.judge.refresh gtfobins --repo PATH`. To edit: do not; regenerate from GTFOBins.""",
        {"commit": commit, "binaries": binaries},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m secml_recipes.judge.refresh", description=__doc__)
    parser.add_argument("what", choices=["units", "gtfobins"])
    parser.add_argument("--repo", type=Path, help="a clone (or bare git dir) of GTFOBins/GTFOBins.github.io")
    args = parser.parse_args(argv)
    if args.what == "units":
        refresh_units()
    elif args.repo is None:
        parser.error("gtfobins needs --repo PATH (a clone of github.com/GTFOBins/GTFOBins.github.io)")
    else:
        refresh_gtfobins(args.repo)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
