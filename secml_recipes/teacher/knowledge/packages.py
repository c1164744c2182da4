"""A package database shaped like a real distribution's: package names, versions, origins, the paths each
package owns and the service units it ships.

It answers the simulated package manager (`dpkg -S` / `rpm -qf`, `dpkg -V` / `rpm -V`, `apt-cache policy` /
`dnf info`) in the tool episodes, and tells the teacher which service units are the distribution's own.
Versions are those of Ubuntu 24.04 / Debian 12 and Fedora 41 / RHEL 9 era packages; the origin is the
archive or vendor repository a genuine copy comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


# family -> package rows: name, version, origin, owned paths, service units
_PACKAGES = {
    "debian": [
        (
            "passwd",
            "1:4.13+dfsg1-4ubuntu3",
            "main",
            (
                "/usr/bin/passwd",
                "/usr/bin/chfn",
                "/usr/bin/chsh",
                "/usr/bin/gpasswd",
                "/usr/bin/chage",
                "/usr/bin/expiry",
            ),
            (),
        ),
        ("login", "1:4.13+dfsg1-4ubuntu3", "main", ("/usr/bin/newgrp", "/usr/bin/login", "/usr/bin/faillog"), ()),
        ("util-linux", "2.39.3-9ubuntu6", "main", ("/usr/bin/su", "/usr/bin/lsblk", "/usr/bin/dmesg"), ()),
        ("mount", "2.39.3-9ubuntu6", "main", ("/usr/bin/mount", "/usr/bin/umount"), ()),
        ("bsdutils", "1:2.39.3-9ubuntu6", "main", ("/usr/bin/wall", "/usr/bin/logger"), ()),
        ("bsdextrautils", "2.39.3-9ubuntu6", "main", ("/usr/bin/bsd-write", "/usr/bin/write.ul"), ()),
        ("sudo", "1.9.15p5-3ubuntu5", "main", ("/usr/bin/sudo", "/usr/bin/sudoedit"), ()),
        ("pkexec", "124-2ubuntu1", "main", ("/usr/bin/pkexec",), ()),
        ("fuse3", "3.14.0-5build1", "main", ("/usr/bin/fusermount3", "/usr/sbin/mount.fuse3"), ()),
        ("fuse", "2.9.9-8.1build1", "universe", ("/usr/bin/fusermount",), ()),
        ("cron", "3.0pl1-184ubuntu2", "main", ("/usr/bin/crontab", "/usr/sbin/cron"), ("cron.service",)),
        ("at", "3.2.5-2.1ubuntu3", "main", ("/usr/bin/at", "/usr/sbin/atd"), ("atd.service",)),
        ("openssh-client", "1:9.6p1-3ubuntu13.5", "main", ("/usr/bin/ssh", "/usr/bin/ssh-agent", "/usr/bin/scp"), ()),
        ("openssh-server", "1:9.6p1-3ubuntu13.5", "main", ("/usr/sbin/sshd",), ("ssh.service",)),
        ("liblockfile-bin", "1.17-1build3", "main", ("/usr/bin/dotlockfile",), ()),
        (
            "plocate",
            "1.1.19-2ubuntu2",
            "main",
            ("/usr/bin/plocate", "/usr/sbin/updatedb.plocate"),
            ("plocate-updatedb.service",),
        ),
        ("mlocate", "1.1.18-1", "universe", ("/usr/bin/mlocate",), ()),
        ("screen", "4.9.1-1build1", "main", ("/usr/bin/screen",), ()),
        ("uidmap", "1:4.13+dfsg1-4ubuntu3", "main", ("/usr/bin/newuidmap", "/usr/bin/newgidmap"), ()),
        ("ntfs-3g", "1:2022.10.3-1.2ubuntu3", "main", ("/usr/bin/ntfs-3g",), ()),
        ("iputils-tracepath", "3:20240117-1build1", "main", ("/usr/bin/tracepath", "/usr/bin/traceroute6.iputils"), ()),
        ("open-vm-tools-desktop", "2:12.4.5-1~ubuntu0.24.04.1", "main", ("/usr/bin/vmware-user-suid-wrapper",), ()),
        ("krb5-user", "1.20.1-6ubuntu2", "main", ("/usr/bin/ksu", "/usr/bin/kinit"), ()),
        ("firejail", "0.9.72-2ubuntu1", "universe", ("/usr/bin/firejail",), ()),
        ("ppp", "2.4.9-1+1.1ubuntu5", "main", ("/usr/sbin/pppd", "/usr/sbin/chat"), ()),
        (
            "libpam-modules-bin",
            "1.5.3-5ubuntu5.1",
            "main",
            ("/usr/sbin/unix_chkpwd", "/usr/sbin/pam_timestamp_check"),
            (),
        ),
        ("libpam-extrausers", "1.0-2build2", "main", ("/usr/sbin/pam_extrausers_chkpwd",), ()),
        (
            "postfix",
            "3.8.6-1build2",
            "main",
            ("/usr/sbin/postdrop", "/usr/sbin/postqueue", "/usr/sbin/postfix"),
            ("postfix.service",),
        ),
        ("exim4-daemon-light", "4.97-4ubuntu4", "main", ("/usr/sbin/exim4",), ("exim4.service",)),
        ("nfs-common", "1:2.6.4-3ubuntu5", "main", ("/usr/sbin/mount.nfs",), ("rpc-statd.service",)),
        ("cifs-utils", "2:7.0-2build1", "main", ("/usr/sbin/mount.cifs",), ()),
        ("iputils-ping", "3:20240117-1build1", "main", ("/usr/bin/ping",), ()),
        ("iputils-arping", "3:20240117-1build1", "main", ("/usr/bin/arping",), ()),
        ("iputils-clockdiff", "3:20240117-1build1", "main", ("/usr/bin/clockdiff",), ()),
        ("mtr-tiny", "0.95-1.1build2", "main", ("/usr/bin/mtr", "/usr/bin/mtr-packet"), ()),
        ("fping", "5.1-1build1", "universe", ("/usr/bin/fping",), ()),
        ("gnome-keyring", "46.1-2build1", "main", ("/usr/bin/gnome-keyring-daemon",), ()),
        ("wireshark-common", "4.2.2-1.1build3", "universe", ("/usr/bin/dumpcap",), ()),
        ("kwin-wayland", "4:5.27.11-0ubuntu2", "universe", ("/usr/bin/kwin_wayland",), ()),
        ("coreutils", "9.4-3ubuntu6", "main", ("/usr/bin/ls", "/usr/bin/cp", "/usr/bin/cat", "/usr/bin/chmod"), ()),
        ("procps", "2:4.0.4-4ubuntu3", "main", ("/usr/bin/ps", "/usr/bin/top", "/usr/bin/pgrep"), ()),
        ("net-tools", "2.10-0.1ubuntu4", "main", ("/usr/bin/netstat", "/usr/sbin/ifconfig"), ()),
        ("bash", "5.2.21-2ubuntu4", "main", ("/usr/bin/bash",), ()),
        ("dash", "0.5.12-6ubuntu5", "main", ("/usr/bin/dash",), ()),
        ("python3.12", "3.12.3-1ubuntu0.3", "main", ("/usr/bin/python3.12",), ()),
        ("perl-base", "5.38.2-3.2build2", "main", ("/usr/bin/perl",), ()),
        ("nodejs", "18.19.1+dfsg-6ubuntu5", "universe", ("/usr/bin/node",), ()),
        ("curl", "8.5.0-2ubuntu10.6", "main", ("/usr/bin/curl",), ()),
        ("wget", "1.21.4-1ubuntu4.1", "main", ("/usr/bin/wget",), ()),
        ("dbus-daemon", "1.14.10-4ubuntu4.1", "main", ("/usr/bin/dbus-daemon",), ("dbus.service",)),
        (
            "systemd",
            "255.4-1ubuntu8.4",
            "main",
            ("/usr/bin/systemctl", "/usr/lib/systemd/systemd"),
            (
                "systemd-journald.service",
                "systemd-logind.service",
                "systemd-udevd.service",
                "systemd-timesyncd.service",
                "systemd-networkd.service",
                "getty@.service",
            ),
        ),
        (
            "systemd-resolved",
            "255.4-1ubuntu8.4",
            "main",
            ("/usr/lib/systemd/systemd-resolved",),
            ("systemd-resolved.service",),
        ),
        ("network-manager", "1.46.0-1ubuntu2", "main", ("/usr/sbin/NetworkManager",), ("NetworkManager.service",)),
        ("rsyslog", "8.2312.0-3ubuntu9", "main", ("/usr/sbin/rsyslogd",), ("rsyslog.service",)),
        ("chrony", "4.5-1ubuntu4", "main", ("/usr/sbin/chronyd",), ("chrony.service",)),
        ("cups-daemon", "2.4.7-1.2ubuntu7", "main", ("/usr/sbin/cupsd",), ("cups.service",)),
        ("avahi-daemon", "0.8-13ubuntu6", "main", ("/usr/sbin/avahi-daemon",), ("avahi-daemon.service",)),
        ("nginx-core", "1.24.0-2ubuntu7.1", "main", ("/usr/sbin/nginx",), ("nginx.service",)),
        ("apache2-bin", "2.4.58-1ubuntu8.4", "main", ("/usr/sbin/apache2",), ("apache2.service",)),
        ("redis-server", "5:7.0.15-1build2", "universe", ("/usr/bin/redis-server",), ("redis-server.service",)),
        (
            "postgresql-16",
            "16.4-0ubuntu0.24.04.2",
            "main",
            ("/usr/lib/postgresql/16/bin/postgres",),
            ("postgresql@.service", "postgresql.service"),
        ),
        ("mysql-server-core-8.0", "8.0.39-0ubuntu0.24.04.2", "main", ("/usr/sbin/mysqld",), ("mysql.service",)),
        ("docker.io", "24.0.7-0ubuntu4.1", "universe", ("/usr/bin/dockerd", "/usr/bin/docker"), ("docker.service",)),
        ("containerd", "1.7.12-0ubuntu4.1", "main", ("/usr/bin/containerd",), ("containerd.service",)),
        (
            "prometheus-node-exporter",
            "1.7.0-1ubuntu0.2",
            "universe",
            ("/usr/bin/prometheus-node-exporter",),
            ("prometheus-node-exporter.service",),
        ),
        ("gnome-shell", "46.0-0ubuntu6~24.04.4", "main", ("/usr/bin/gnome-shell",), ()),
        (
            "firefox-esr",
            "128.5.0esr-1~deb12u1",
            "main",
            ("/usr/lib/firefox-esr/firefox-esr", "/usr/lib/firefox/firefox"),
            (),
        ),
        ("snapd", "2.66.1+24.04", "main", ("/usr/bin/snap", "/usr/lib/snapd/snapd"), ("snapd.service",)),
        ("auditd", "1:3.1.2-2.1build1.1", "main", ("/usr/sbin/auditd",), ("auditd.service",)),
        (
            "apparmor",
            "4.0.1really4.0.1-0ubuntu0.24.04.3",
            "main",
            ("/usr/sbin/apparmor_parser",),
            ("apparmor.service",),
        ),
        (
            "unattended-upgrades",
            "2.9.1+nmu4ubuntu1",
            "main",
            ("/usr/bin/unattended-upgrade",),
            ("unattended-upgrades.service",),
        ),
        (
            "accountsservice",
            "23.13.9-2ubuntu6",
            "main",
            ("/usr/libexec/accounts-daemon",),
            ("accounts-daemon.service",),
        ),
        ("udisks2", "2.10.1-6build1", "main", ("/usr/libexec/udisks2/udisksd",), ("udisks2.service",)),
        ("polkitd", "124-2ubuntu1", "main", ("/usr/lib/polkit-1/polkitd",), ("polkit.service",)),
        ("packagekit", "1.2.8-2build3", "main", ("/usr/libexec/packagekitd",), ("packagekit.service",)),
        ("openvpn", "2.6.9-1ubuntu4.1", "main", ("/usr/sbin/openvpn",), ("openvpn.service", "openvpn@.service")),
        (
            "wireguard-tools",
            "1.0.20210914-1ubuntu4",
            "main",
            ("/usr/bin/wg", "/usr/bin/wg-quick"),
            ("wg-quick@.service",),
        ),
        ("libvirt-daemon-system", "10.0.0-2ubuntu8.4", "main", ("/usr/sbin/libvirtd",), ("libvirtd.service",)),
        ("thermald", "2.5.6-2build2", "main", ("/usr/sbin/thermald",), ("thermald.service",)),
        ("bluez", "5.72-0ubuntu5", "main", ("/usr/libexec/bluetooth/bluetoothd",), ("bluetooth.service",)),
        ("kmod", "31+20240202-2ubuntu7", "main", ("/usr/bin/kmod", "/usr/sbin/modprobe"), ()),
    ],
    "rhel": [
        ("passwd", "0.80-17.fc41", "baseos", ("/usr/bin/passwd",), ()),
        (
            "shadow-utils",
            "2:4.15.1-12.fc41",
            "baseos",
            ("/usr/bin/chage", "/usr/bin/gpasswd", "/usr/bin/newgrp", "/usr/bin/newuidmap", "/usr/bin/newgidmap"),
            (),
        ),
        ("util-linux-user", "2.40.2-4.fc41", "baseos", ("/usr/bin/chfn", "/usr/bin/chsh"), ()),
        ("util-linux", "2.40.2-4.fc41", "baseos", ("/usr/bin/su", "/usr/bin/write", "/usr/bin/wall"), ()),
        ("util-linux-core", "2.40.2-4.fc41", "baseos", ("/usr/bin/mount", "/usr/bin/umount"), ()),
        ("sudo", "1.9.15-5.p5.fc41", "baseos", ("/usr/bin/sudo",), ()),
        ("polkit", "125-1.fc41", "baseos", ("/usr/bin/pkexec", "/usr/lib/polkit-1/polkitd"), ("polkit.service",)),
        ("cronie", "1.7.2-4.fc41", "baseos", ("/usr/bin/crontab", "/usr/sbin/crond"), ("crond.service",)),
        ("at", "3.2.5-13.fc41", "baseos", ("/usr/bin/at", "/usr/sbin/atd"), ("atd.service",)),
        ("fuse3", "3.16.2-4.fc41", "baseos", ("/usr/bin/fusermount3",), ()),
        ("fuse", "2.9.9-22.fc41", "baseos", ("/usr/bin/fusermount",), ()),
        ("plocate", "1.1.22-1.fc41", "baseos", ("/usr/bin/locate", "/usr/bin/plocate"), ("plocate-updatedb.service",)),
        ("systemtap-runtime", "5.2-1.fc41", "appstream", ("/usr/bin/staprun",), ()),
        ("pam", "1.6.1-7.fc41", "baseos", ("/usr/sbin/unix_chkpwd", "/usr/sbin/pam_timestamp_check"), ()),
        ("usermode", "1.114-10.fc41", "baseos", ("/usr/sbin/userhelper",), ()),
        ("grub2-tools-minimal", "1:2.12-10.fc41", "baseos", ("/usr/sbin/grub2-set-bootflag",), ()),
        ("nfs-utils", "1:2.7.1-1.rc3.fc41", "baseos", ("/usr/sbin/mount.nfs",), ("nfs-server.service",)),
        ("postfix", "2:3.9.0-7.fc41", "baseos", ("/usr/sbin/postdrop", "/usr/sbin/postqueue"), ("postfix.service",)),
        ("initscripts", "10.23-1.fc41", "baseos", ("/usr/sbin/usernetctl",), ()),
        ("iputils", "20240905-1.fc41", "baseos", ("/usr/bin/ping", "/usr/bin/clockdiff", "/usr/bin/arping"), ()),
        ("mtr", "2:0.95-12.fc41", "appstream", ("/usr/bin/mtr", "/usr/bin/mtr-packet"), ()),
        ("wireshark-cli", "1:4.4.2-1.fc41", "appstream", ("/usr/bin/dumpcap",), ()),
        ("coreutils", "9.5-11.fc41", "baseos", ("/usr/bin/ls", "/usr/bin/cp", "/usr/bin/cat", "/usr/bin/chmod"), ()),
        ("procps-ng", "4.0.4-4.fc41", "baseos", ("/usr/bin/ps", "/usr/bin/top", "/usr/bin/pgrep"), ()),
        ("net-tools", "2.0-0.70.20160912git.fc41", "baseos", ("/usr/bin/netstat", "/usr/sbin/ifconfig"), ()),
        ("bash", "5.2.32-1.fc41", "baseos", ("/usr/bin/bash",), ()),
        ("python3", "3.13.0-1.fc41", "baseos", ("/usr/bin/python3.13", "/usr/bin/python3.12"), ()),
        ("perl-interpreter", "4:5.40.0-512.fc41", "baseos", ("/usr/bin/perl",), ()),
        ("openssh-clients", "9.8p1-3.fc41", "baseos", ("/usr/bin/ssh", "/usr/bin/ssh-agent"), ()),
        ("openssh-server", "9.8p1-3.fc41", "baseos", ("/usr/sbin/sshd",), ("sshd.service",)),
        ("dbus-broker", "36-4.fc41", "baseos", ("/usr/bin/dbus-broker",), ("dbus-broker.service",)),
        (
            "systemd",
            "256.10-1.fc41",
            "baseos",
            ("/usr/bin/systemctl", "/usr/lib/systemd/systemd"),
            ("systemd-journald.service", "systemd-logind.service", "systemd-udevd.service", "getty@.service"),
        ),
        (
            "systemd-resolved",
            "256.10-1.fc41",
            "baseos",
            ("/usr/lib/systemd/systemd-resolved",),
            ("systemd-resolved.service",),
        ),
        ("NetworkManager", "1:1.50.0-1.fc41", "baseos", ("/usr/sbin/NetworkManager",), ("NetworkManager.service",)),
        ("rsyslog", "8.2408.0-2.fc41", "baseos", ("/usr/sbin/rsyslogd",), ("rsyslog.service",)),
        ("chrony", "4.6.1-1.fc41", "baseos", ("/usr/sbin/chronyd",), ("chronyd.service",)),
        ("cups", "1:2.4.11-1.fc41", "appstream", ("/usr/sbin/cupsd",), ("cups.service",)),
        ("avahi", "0.8-29.fc41", "baseos", ("/usr/sbin/avahi-daemon",), ("avahi-daemon.service",)),
        ("nginx-core", "2:1.26.2-1.fc41", "appstream", ("/usr/sbin/nginx",), ("nginx.service",)),
        ("httpd-core", "2.4.62-2.fc41", "appstream", ("/usr/sbin/httpd",), ("httpd.service",)),
        ("redis", "7.2.6-1.fc41", "appstream", ("/usr/bin/redis-server",), ("redis.service",)),
        ("postgresql-server", "16.4-1.fc41", "appstream", ("/usr/bin/postgres",), ("postgresql.service",)),
        ("moby-engine", "27.3.1-1.fc41", "appstream", ("/usr/bin/dockerd", "/usr/bin/docker"), ("docker.service",)),
        ("containerd", "1.7.23-1.fc41", "appstream", ("/usr/bin/containerd",), ("containerd.service",)),
        ("podman", "5:5.3.1-1.fc41", "appstream", ("/usr/bin/podman",), ("podman.service",)),
        (
            "golang-github-prometheus-node-exporter",
            "1.8.2-1.fc41",
            "appstream",
            ("/usr/bin/node_exporter",),
            ("node_exporter.service",),
        ),
        ("gnome-shell", "47.2-1.fc41", "appstream", ("/usr/bin/gnome-shell",), ()),
        ("firefox", "133.0-1.fc41", "appstream", ("/usr/lib64/firefox/firefox",), ()),
        ("audit", "4.0.2-1.fc41", "baseos", ("/usr/sbin/auditd",), ("auditd.service",)),
        ("firewalld", "2.2.3-1.fc41", "baseos", ("/usr/sbin/firewalld",), ("firewalld.service",)),
        ("kmod", "33-1.fc41", "baseos", ("/usr/bin/kmod", "/usr/sbin/modprobe"), ()),
    ],
}

# Vendor repositories: packages that are not the distribution's but come from a known, signed source.
_VENDOR_PACKAGES = [
    (
        "mullvad-vpn",
        "2025.3",
        "repository.mullvad.net",
        ("/usr/bin/mullvad-exclude", "/usr/bin/mullvad", "/usr/bin/mullvad-daemon"),
        ("mullvad-daemon.service",),
    ),
    ("1password-cli", "2.30.3-1", "downloads.1password.com", ("/usr/bin/op",), ()),
    ("keybase", "6.4.0-20240821", "prerelease.keybase.io", ("/usr/bin/keybase", "/usr/bin/keybase-redirector"), ()),
    (
        "nvidia-modprobe",
        "550.120-0ubuntu1",
        "developer.download.nvidia.com (CUDA repository)",
        ("/usr/bin/nvidia-modprobe",),
        (),
    ),
    ("code", "1.96.2-1734607745", "packages.microsoft.com", ("/usr/share/code/code", "/usr/bin/code"), ()),
    ("google-chrome-stable", "131.0.6778.204-1", "dl.google.com", ("/opt/google/chrome/chrome",), ()),
    ("docker-ce", "5:27.4.1-1", "download.docker.com", ("/usr/bin/dockerd",), ("docker.service",)),
]

ORIGIN_LABEL = {
    ("debian", "main"): "{distro} archive (main)",
    ("debian", "universe"): "{distro} archive (universe)",
    ("rhel", "baseos"): "{distro} BaseOS repository",
    ("rhel", "appstream"): "{distro} AppStream repository",
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
VENDOR_ORIGINS = {row[2] for row in _VENDOR_PACKAGES}
UNIT_PACKAGE = {unit: name for rows in _PACKAGES.values() for name, _, _, _, units in rows for unit in units}
UNIT_PACKAGE.update({unit: row[0] for row in _VENDOR_PACKAGES for unit in row[4]})


def owning_package(path: str, family: str) -> Package | None:
    """The package that owns `path` (merged-/usr aware), like `dpkg -S` / `rpm -qf`; None when unowned."""
    table = PACKAGE_BY_PATH.get(family, {})
    return table.get(path) or table.get(canonical_path(path))


def is_vendor(pkg: Package) -> bool:
    return pkg.origin in VENDOR_ORIGINS


def origin_text(pkg: Package, family: str, distro: str) -> str:
    if is_vendor(pkg):
        return f"vendor repository {pkg.origin}"
    return ORIGIN_LABEL.get((family, pkg.origin), "{distro} archive").format(distro=distro)


def stock_unit(unit: str) -> str | None:
    """The package that ships a service unit (templates match `name@instance.service`), or None."""
    if unit in UNIT_PACKAGE:
        return UNIT_PACKAGE[unit]
    if "@" in unit:
        template = unit.split("@", 1)[0] + "@.service"
        return UNIT_PACKAGE.get(template)
    return None


def third_party_package(path: str) -> str | None:
    """The vendor package name of a known third-party privileged binary."""
    row = THIRD_PARTY.get(canonical_path(path))
    return row.package if row else None
