"""Privileged binaries a stock distribution ships, with which bit, for whom and why.

sys-scan's SUID scanner reports "SUID or SGID bit set" without saying which bit or which owner, and marks
only 14 basenames as expected (passwd, sudo, chsh, chfn, newgrp, gpasswd, mount, umount, su, pkexec,
traceroute6.iputils, ping, ping6, ssh-agent). Every other stock binary arrives as medium. These tables
say what the package really installs, so the teacher never tells anyone to strip a bit that a stock
feature needs (`chmod u-s` on an SGID binary does nothing; on fusermount3 it breaks every FUSE mount).

Paths are the merged-/usr paths: `/bin/x` and `/sbin/x` are looked up as `/usr/bin/x` and `/usr/sbin/x`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PrivilegedBinary:
    family: str  # "debian" (Debian, Ubuntu) or "rhel" (RHEL, Fedora)
    path: str
    bit: str  # "suid", "sgid" or "suid+sgid"
    owner: str  # the user a SUID binary runs as, or the group an SGID binary runs with
    package: str
    purpose: str  # why the package sets the bit
    breaks: str  # what stops working if someone removes it


# family, path, bit, owner/group, package, why the bit is set, what removing it breaks
_STOCK = [
    (
        "debian",
        "/usr/bin/passwd",
        "suid",
        "root",
        "passwd",
        "users change their own password, which rewrites /etc/shadow",
        "password changes by users",
    ),
    (
        "debian",
        "/usr/bin/chfn",
        "suid",
        "root",
        "passwd",
        "users edit their own GECOS (finger) entry in /etc/passwd",
        "chfn for users",
    ),
    (
        "debian",
        "/usr/bin/chsh",
        "suid",
        "root",
        "passwd",
        "users change their own login shell in /etc/passwd",
        "chsh for users",
    ),
    (
        "debian",
        "/usr/bin/gpasswd",
        "suid",
        "root",
        "passwd",
        "group administrators manage /etc/group and /etc/gshadow",
        "gpasswd for group administrators",
    ),
    (
        "debian",
        "/usr/bin/chage",
        "sgid",
        "shadow",
        "passwd",
        "users read their own password-ageing data from /etc/shadow (chage -l)",
        "chage -l for users",
    ),
    (
        "debian",
        "/usr/bin/expiry",
        "sgid",
        "shadow",
        "passwd",
        "checks password expiry for the user at login",
        "forced password changes on expiry",
    ),
    (
        "debian",
        "/usr/bin/newgrp",
        "suid",
        "root",
        "login",
        "users switch their primary group (sg is a link to it)",
        "newgrp and sg",
    ),
    (
        "debian",
        "/usr/bin/su",
        "suid",
        "root",
        "util-linux",
        "switches user after authenticating as the target user",
        "su",
    ),
    (
        "debian",
        "/usr/bin/mount",
        "suid",
        "root",
        "mount",
        "users mount filesystems marked 'user' or 'users' in /etc/fstab",
        "user mounts from fstab",
    ),
    (
        "debian",
        "/usr/bin/umount",
        "suid",
        "root",
        "mount",
        "users unmount the filesystems they mounted",
        "user unmounts",
    ),
    ("debian", "/usr/bin/sudo", "suid", "root", "sudo", "runs commands as another user as /etc/sudoers allows", "sudo"),
    (
        "debian",
        "/usr/bin/pkexec",
        "suid",
        "root",
        "pkexec",
        "runs a program as another user after polkit authorisation",
        "pkexec and the desktop tools built on it",
    ),
    (
        "debian",
        "/usr/bin/fusermount3",
        "suid",
        "root",
        "fuse3",
        "lets users mount and unmount FUSE filesystems",
        "sshfs, AppImages, rclone mount, gvfs FUSE mounts and the Flatpak document portal",
    ),
    (
        "debian",
        "/usr/bin/fusermount",
        "suid",
        "root",
        "fuse",
        "lets users mount and unmount FUSE 2 filesystems",
        "FUSE 2 filesystems for users",
    ),
    (
        "debian",
        "/usr/bin/crontab",
        "sgid",
        "crontab",
        "cron",
        "users install their own crontab in /var/spool/cron/crontabs, which only group crontab may write",
        "per-user crontabs",
    ),
    (
        "debian",
        "/usr/bin/at",
        "suid+sgid",
        "daemon",
        "at",
        "users queue jobs in /var/spool/cron/atjobs, owned by daemon",
        "at and batch for users",
    ),
    (
        "debian",
        "/usr/bin/ssh-agent",
        "sgid",
        "_ssh",
        "openssh-client",
        "the set-gid bit makes the agent non-dumpable, so the user's other processes cannot ptrace it and "
        "read loaded keys",
        "the agent's protection of loaded keys",
    ),
    (
        "debian",
        "/usr/bin/wall",
        "sgid",
        "tty",
        "bsdutils",
        "writes broadcast messages to every user's terminal",
        "wall",
    ),
    (
        "debian",
        "/usr/bin/bsd-write",
        "sgid",
        "tty",
        "bsdextrautils",
        "writes a message to another user's terminal",
        "write",
    ),
    (
        "debian",
        "/usr/bin/write.ul",
        "sgid",
        "tty",
        "bsdextrautils",
        "writes a message to another user's terminal",
        "write",
    ),
    (
        "debian",
        "/usr/bin/dotlockfile",
        "sgid",
        "mail",
        "liblockfile-bin",
        "locks mail spool files in /var/mail",
        "mail spool locking by mail clients",
    ),
    (
        "debian",
        "/usr/bin/plocate",
        "sgid",
        "plocate",
        "plocate",
        "reads the file index that ordinary users may not read directly",
        "locate for users",
    ),
    (
        "debian",
        "/usr/bin/mlocate",
        "sgid",
        "mlocate",
        "mlocate",
        "reads the file index that ordinary users may not read directly",
        "locate for users",
    ),
    (
        "debian",
        "/usr/bin/screen",
        "sgid",
        "utmp",
        "screen",
        "records screen sessions in utmp",
        "screen's login records",
    ),
    (
        "debian",
        "/usr/bin/newuidmap",
        "suid",
        "root",
        "uidmap",
        "maps subordinate user ids for rootless containers",
        "rootless Podman and Docker, unprivileged sandboxes",
    ),
    (
        "debian",
        "/usr/bin/newgidmap",
        "suid",
        "root",
        "uidmap",
        "maps subordinate group ids for rootless containers",
        "rootless Podman and Docker, unprivileged sandboxes",
    ),
    (
        "debian",
        "/usr/bin/ntfs-3g",
        "suid",
        "root",
        "ntfs-3g",
        "lets users mount NTFS volumes (Ubuntu keeps the bit)",
        "NTFS mounts by users",
    ),
    (
        "debian",
        "/usr/bin/traceroute6.iputils",
        "suid",
        "root",
        "iputils-tracepath",
        "opens raw sockets for IPv6 traceroute on older releases",
        "traceroute6 for users",
    ),
    (
        "debian",
        "/usr/bin/vmware-user-suid-wrapper",
        "suid",
        "root",
        "open-vm-tools-desktop",
        "starts the VMware user agent with the rights it needs for display and clipboard",
        "VMware guest desktop integration",
    ),
    ("debian", "/usr/bin/ksu", "suid", "root", "krb5-user", "Kerberised su: switches user on a valid ticket", "ksu"),
    (
        "debian",
        "/usr/bin/firejail",
        "suid",
        "root",
        "firejail",
        "sets up namespaces and seccomp sandboxes for users",
        "firejail sandboxes",
    ),
    (
        "debian",
        "/usr/sbin/pppd",
        "suid",
        "root",
        "ppp",
        "brings up PPP links for members of group dip (mode 4754: others cannot run it)",
        "mobile broadband, dial-up and PPP-based VPNs (PPTP, L2TP) from NetworkManager",
    ),
    (
        "debian",
        "/usr/sbin/unix_chkpwd",
        "sgid",
        "shadow",
        "libpam-modules-bin",
        "lets an unprivileged program check the user's own password against /etc/shadow",
        "unlocking the screen and password prompts of unprivileged programs",
    ),
    (
        "debian",
        "/usr/sbin/pam_extrausers_chkpwd",
        "sgid",
        "shadow",
        "libpam-extrausers",
        "the same password check for accounts kept in /var/lib/extrausers",
        "password checks for extrausers accounts",
    ),
    (
        "debian",
        "/usr/sbin/postdrop",
        "sgid",
        "postdrop",
        "postfix",
        "drops locally submitted mail into the Postfix queue",
        "sending mail from the command line",
    ),
    (
        "debian",
        "/usr/sbin/postqueue",
        "sgid",
        "postdrop",
        "postfix",
        "lets users list and flush the Postfix queue",
        "mailq for users",
    ),
    (
        "debian",
        "/usr/sbin/exim4",
        "suid",
        "root",
        "exim4-daemon-light",
        "delivers local mail and runs the queue",
        "local mail delivery",
    ),
    (
        "debian",
        "/usr/sbin/mount.nfs",
        "suid",
        "root",
        "nfs-common",
        "lets users mount NFS shares marked 'user' in /etc/fstab",
        "user NFS mounts",
    ),
    (
        "debian",
        "/usr/sbin/mount.cifs",
        "suid",
        "root",
        "cifs-utils",
        "lets users mount SMB shares marked 'user' in /etc/fstab",
        "user SMB mounts",
    ),
    # Below /usr/lib and /usr/libexec: real stock set-id helpers that sys-scan 5.0.0's SUID walk never reaches.
    (
        "debian",
        "/usr/lib/openssh/ssh-keysign",
        "suid",
        "root",
        "openssh-client",
        "signs host-based authentication requests with the host key",
        "host-based SSH authentication",
    ),
    (
        "debian",
        "/usr/lib/dbus-1.0/dbus-daemon-launch-helper",
        "suid",
        "root",
        "dbus-daemon",
        "starts system bus services on demand for the messagebus group (mode 4754)",
        "D-Bus service activation",
    ),
    (
        "debian",
        "/usr/lib/polkit-1/polkit-agent-helper-1",
        "suid",
        "root",
        "polkitd",
        "checks a user's password for polkit authentication dialogs",
        "polkit password prompts",
    ),
    (
        "debian",
        "/usr/lib/snapd/snap-confine",
        "suid",
        "root",
        "snapd",
        "sets up the confinement every snap application starts in",
        "every snap application",
    ),
    (
        "debian",
        "/usr/lib/xorg/Xorg.wrap",
        "suid",
        "root",
        "xserver-xorg-legacy",
        "starts Xorg with the rights it needs for legacy drivers",
        "rootful X sessions on legacy drivers",
    ),
    (
        "rhel",
        "/usr/libexec/openssh/ssh-keysign",
        "sgid",
        "ssh_keys",
        "openssh-clients",
        "reads the host keys for host-based authentication",
        "host-based SSH authentication",
    ),
    (
        "rhel",
        "/usr/libexec/dbus-1/dbus-daemon-launch-helper",
        "suid",
        "root",
        "dbus-daemon",
        "starts system bus services on demand",
        "D-Bus service activation",
    ),
    (
        "rhel",
        "/usr/lib/polkit-1/polkit-agent-helper-1",
        "suid",
        "root",
        "polkit",
        "checks a user's password for polkit authentication dialogs",
        "polkit password prompts",
    ),
    (
        "rhel",
        "/usr/bin/passwd",
        "suid",
        "root",
        "passwd",
        "users change their own password, which rewrites /etc/shadow",
        "password changes by users",
    ),
    (
        "rhel",
        "/usr/bin/chage",
        "suid",
        "root",
        "shadow-utils",
        "users read their own password-ageing data from /etc/shadow (chage -l)",
        "chage -l for users",
    ),
    (
        "rhel",
        "/usr/bin/gpasswd",
        "suid",
        "root",
        "shadow-utils",
        "group administrators manage /etc/group and /etc/gshadow",
        "gpasswd for group administrators",
    ),
    ("rhel", "/usr/bin/newgrp", "suid", "root", "shadow-utils", "users switch their primary group", "newgrp and sg"),
    (
        "rhel",
        "/usr/bin/chfn",
        "suid",
        "root",
        "util-linux-user",
        "users edit their own GECOS entry in /etc/passwd",
        "chfn for users",
    ),
    (
        "rhel",
        "/usr/bin/chsh",
        "suid",
        "root",
        "util-linux-user",
        "users change their own login shell",
        "chsh for users",
    ),
    ("rhel", "/usr/bin/su", "suid", "root", "util-linux", "switches user after authentication", "su"),
    (
        "rhel",
        "/usr/bin/mount",
        "suid",
        "root",
        "util-linux-core",
        "users mount filesystems marked 'user' in /etc/fstab",
        "user mounts from fstab",
    ),
    (
        "rhel",
        "/usr/bin/umount",
        "suid",
        "root",
        "util-linux-core",
        "users unmount the filesystems they mounted",
        "user unmounts",
    ),
    ("rhel", "/usr/bin/sudo", "suid", "root", "sudo", "runs commands as another user as /etc/sudoers allows", "sudo"),
    (
        "rhel",
        "/usr/bin/pkexec",
        "suid",
        "root",
        "polkit",
        "runs a program as another user after polkit authorisation",
        "pkexec and the desktop tools built on it",
    ),
    (
        "rhel",
        "/usr/bin/crontab",
        "suid",
        "root",
        "cronie",
        "users edit their own crontab in /var/spool/cron",
        "per-user crontabs",
    ),
    ("rhel", "/usr/bin/at", "suid", "root", "at", "users queue jobs in /var/spool/at", "at and batch for users"),
    (
        "rhel",
        "/usr/bin/fusermount3",
        "suid",
        "root",
        "fuse3",
        "lets users mount and unmount FUSE filesystems",
        "sshfs, AppImages, rclone mount and Flatpak portals",
    ),
    (
        "rhel",
        "/usr/bin/fusermount",
        "suid",
        "root",
        "fuse",
        "lets users mount and unmount FUSE 2 filesystems",
        "FUSE 2 filesystems for users",
    ),
    ("rhel", "/usr/bin/write", "sgid", "tty", "util-linux", "writes a message to another user's terminal", "write"),
    ("rhel", "/usr/bin/wall", "sgid", "tty", "util-linux", "writes broadcast messages to terminals", "wall"),
    (
        "rhel",
        "/usr/bin/locate",
        "sgid",
        "plocate",
        "plocate",
        "reads the file index that ordinary users may not read directly",
        "locate for users",
    ),
    (
        "rhel",
        "/usr/bin/staprun",
        "suid",
        "root",
        "systemtap-runtime",
        "loads SystemTap modules for members of stapusr",
        "SystemTap for non-root users",
    ),
    (
        "rhel",
        "/usr/sbin/unix_chkpwd",
        "suid",
        "root",
        "pam",
        "lets an unprivileged program check the user's own password",
        "screen unlock and password prompts",
    ),
    (
        "rhel",
        "/usr/sbin/pam_timestamp_check",
        "suid",
        "root",
        "pam",
        "checks PAM timestamp tickets for the user",
        "pam_timestamp",
    ),
    (
        "rhel",
        "/usr/sbin/userhelper",
        "suid",
        "root",
        "usermode",
        "runs configured administration tools after authentication (consolehelper)",
        "consolehelper tools",
    ),
    (
        "rhel",
        "/usr/sbin/grub2-set-bootflag",
        "suid",
        "root",
        "grub2-tools-minimal",
        "lets the desktop session record a successful boot, so GRUB can hide its menu",
        "GRUB menu auto-hide",
    ),
    (
        "rhel",
        "/usr/sbin/mount.nfs",
        "suid",
        "root",
        "nfs-utils",
        "lets users mount NFS shares marked 'user' in /etc/fstab",
        "user NFS mounts",
    ),
    (
        "rhel",
        "/usr/sbin/postdrop",
        "sgid",
        "postdrop",
        "postfix",
        "drops locally submitted mail into the Postfix queue",
        "sending mail from the command line",
    ),
    (
        "rhel",
        "/usr/sbin/postqueue",
        "sgid",
        "postdrop",
        "postfix",
        "lets users list and flush the Postfix queue",
        "mailq for users",
    ),
    (
        "rhel",
        "/usr/sbin/usernetctl",
        "suid",
        "root",
        "initscripts",
        "lets users bring up interfaces marked USERCTL=yes (RHEL 7/8)",
        "user-controlled interfaces",
    ),
]

STOCK_PRIVILEGED = {(row[0], row[1]): PrivilegedBinary(*row) for row in _STOCK}


@dataclass(frozen=True)
class CapabilityBinary:
    family: str
    path: str
    capabilities: str
    package: str
    purpose: str


# Binaries that get file capabilities from their package (getcap shows them) instead of a SUID bit.
_CAPABILITIES = [
    ("debian", "/usr/bin/ping", "cap_net_raw=ep", "iputils-ping", "sends ICMP echo over a raw socket"),
    ("debian", "/usr/bin/mtr-packet", "cap_net_raw=ep", "mtr-tiny", "sends mtr's probes over raw sockets"),
    ("debian", "/usr/bin/arping", "cap_net_raw=ep", "iputils-arping", "sends ARP requests"),
    ("debian", "/usr/bin/clockdiff", "cap_net_raw=ep", "iputils-clockdiff", "measures clock skew over ICMP"),
    ("debian", "/usr/bin/fping", "cap_net_raw=ep", "fping", "pings many hosts over a raw socket"),
    (
        "debian",
        "/usr/bin/gnome-keyring-daemon",
        "cap_ipc_lock=ep",
        "gnome-keyring",
        "locks secrets in memory so they are never swapped out",
    ),
    (
        "debian",
        "/usr/bin/dumpcap",
        "cap_net_admin,cap_net_raw=eip",
        "wireshark-common",
        "captures packets for members of group wireshark",
    ),
    ("debian", "/usr/bin/kwin_wayland", "cap_sys_nice=ep", "kwin-wayland", "gives the compositor real-time priority"),
    ("rhel", "/usr/bin/ping", "cap_net_admin,cap_net_raw=p", "iputils", "sends ICMP echo over a raw socket"),
    ("rhel", "/usr/bin/clockdiff", "cap_net_raw=p", "iputils", "measures clock skew over ICMP"),
    ("rhel", "/usr/bin/arping", "cap_net_raw=p", "iputils", "sends ARP requests"),
    ("rhel", "/usr/bin/mtr-packet", "cap_net_raw=ep", "mtr", "sends mtr's probes over raw sockets"),
    ("rhel", "/usr/bin/newuidmap", "cap_setuid=ep", "shadow-utils", "maps subordinate uids for rootless containers"),
    ("rhel", "/usr/bin/newgidmap", "cap_setgid=ep", "shadow-utils", "maps subordinate gids for rootless containers"),
    (
        "rhel",
        "/usr/bin/dumpcap",
        "cap_net_admin,cap_net_raw=ep",
        "wireshark-cli",
        "captures packets for members of group wireshark",
    ),
]

STOCK_CAPABILITIES = {(row[0], row[1]): CapabilityBinary(*row) for row in _CAPABILITIES}


@dataclass(frozen=True)
class ThirdPartyBinary:
    path: str
    vendor: str
    package: str
    bit: str
    owner: str
    purpose: str
    source: str  # where a genuine copy comes from, to compare against


_THIRD_PARTY = [
    (
        "/usr/bin/mullvad-exclude",
        "Mullvad VPN AB",
        "mullvad-vpn",
        "suid",
        "root",
        "starts a program outside the VPN tunnel (split tunnelling) by moving it into an excluded cgroup",
        "repository.mullvad.net or the signed .deb/.rpm on mullvad.net",
    ),
    (
        "/usr/bin/op",
        "AgileBits (1Password)",
        "1password-cli",
        "sgid",
        "onepassword-cli",
        "lets the 1Password CLI reach the desktop app and keeps other processes of the user from tracing it",
        "downloads.1password.com (signed apt/dnf repository)",
    ),
    (
        "/usr/bin/keybase-redirector",
        "Keybase",
        "keybase",
        "suid",
        "root",
        "serves each user's /keybase mount",
        "prerelease.keybase.io (signed packages)",
    ),
    (
        "/usr/bin/nvidia-modprobe",
        "NVIDIA",
        "nvidia-modprobe",
        "suid",
        "root",
        "loads the NVIDIA kernel modules and creates /dev/nvidia* for unprivileged CUDA programs",
        "the NVIDIA driver installer or the CUDA repository",
    ),
    (
        "/usr/sbin/vmware-authd",
        "VMware (Broadcom)",
        "vmware-workstation (bundle installer, no package)",
        "suid",
        "root",
        "authenticates users to VMware Workstation's virtual machines",
        "the VMware Workstation bundle",
    ),
]

THIRD_PARTY = {row[0]: ThirdPartyBinary(*row) for row in _THIRD_PARTY}

# Directories the SUID scanner walks (SuidScanner.cpp), and where an administrator installs local builds.
SUID_SCAN_ROOTS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")
LOCAL_PREFIXES = ("/usr/local/",)


def canonical_path(path: str) -> str:
    """Merged-/usr spelling: /bin/x -> /usr/bin/x, /sbin/x -> /usr/sbin/x (the same file on modern distros)."""
    for old, new in (("/bin/", "/usr/bin/"), ("/sbin/", "/usr/sbin/")):
        if path.startswith(old):
            return new + path[len(old) :]
    return path


def stock_privileged(path: str, family: str) -> PrivilegedBinary | None:
    return STOCK_PRIVILEGED.get((family, canonical_path(path)))


def stock_elsewhere(path: str, family: str) -> PrivilegedBinary | None:
    """The row of another distribution family that ships `path` set-id (a Debian binary on a RHEL host)."""
    for (other, p), row in STOCK_PRIVILEGED.items():
        if other != family and p == canonical_path(path):
            return row
    return None


def stock_capability(path: str, family: str) -> CapabilityBinary | None:
    return STOCK_CAPABILITIES.get((family, canonical_path(path)))


def third_party(path: str) -> ThirdPartyBinary | None:
    return THIRD_PARTY.get(canonical_path(path))


def bit_phrase(bit: str, owner: str) -> str:
    """'SGID shadow', 'SUID root', 'SUID+SGID daemon': how an analyst writes the mode."""
    return f"{bit.upper()} {owner}"
