"""What sys-scan 5.0.0 (commit a2ceff7) really checks, read from its C++ sources, and what it leaves out.

The teacher quotes these meanings in rationales instead of guessing from a flag's name: the IOC flag
`world_writable_executable`, for one, never looks at permissions.
"""

from __future__ import annotations

# (scanner, metadata flag or rule) -> what the source checks
FLAG_MEANINGS = {
    (
        "ioc",
        "world_writable_executable",
    ): "the IOC scanner sets world_writable_executable when the process's /proc/<pid>/exe path starts with "
    "/tmp, /dev/shm, /var/tmp or /home; it never checks the file's permissions",
    (
        "ioc",
        "pattern_match",
    ): "pattern_match means the command line contains one of kworker, cryptominer, xmrig, minerd, kthreadd, "
    "malware, bot, or one of the strings /tmp, /dev/shm, /var/tmp, /home",
    (
        "ioc",
        "deleted_executable",
    ): "deleted_executable means /proc/<pid>/exe ends in '(deleted)': the file the process runs was removed "
    "or replaced on disk after it started",
    (
        "ioc",
        "environment_issue",
    ): "environment_issue means the process environment holds LD_PRELOAD= or LD_LIBRARY_PATH= (the finding "
    "does not say which)",
    (
        "suid_sgid",
        "expected",
    ): "sys-scan marks expected only 14 basenames (passwd, sudo, chsh, chfn, newgrp, gpasswd, mount, umount, "
    "su, pkexec, traceroute6.iputils, ping, ping6, ssh-agent) and reports any other SUID or SGID file as "
    "medium, without saying which bit is set",
    (
        "suid_sgid",
        "",
    ): "the SUID scanner reports a regular file with the set-uid or set-gid bit in /bin, /sbin, /usr/bin, "
    "/usr/sbin, /usr/local/bin or /usr/local/sbin, without saying which bit or owner",
    (
        "world_writable",
        "file_capability",
    ): "the world-writable scanner files binaries with a security.capability attribute under rule "
    "file_capability; it says nothing about write permission",
    (
        "world_writable",
        "",
    ): "the world-writable scanner reports a regular file with the other-write bit among the top-level "
    "entries of /usr/bin, /bin, /usr/local/bin, /etc and /var (it does not recurse)",
    (
        "world_writable",
        "setuid_interpreter",
    ): "setuid_interpreter means a SUID file whose name or #! line is bash, sh, dash, zsh, ksh, python, "
    "python3, perl or ruby",
    (
        "world_writable",
        "path_dir_world_writable",
    ): "path_dir_world_writable means a directory on the scanner's own PATH has the other-write bit",
    (
        "world_writable",
        "dangling_suid_hardlink",
    ): "dangling_suid_hardlink means one SUID inode has names both in a system bin directory and under "
    "/tmp, /var/tmp or /dev/shm",
    (
        "mac",
        "unconfined_critical",
    ): "unconfined_critical counts running processes whose AppArmor label is unconfined and whose executable "
    "is /usr/sbin/sshd, /usr/bin/dbus-daemon, /usr/sbin/nginx, /usr/bin/containerd or /usr/bin/dockerd",
    (
        "kernel_params",
        "mismatch",
    ): "the kernel parameter scanner compares the value with one desired value and calls anything else a "
    "mismatch, including a distribution's deliberate default",
    (
        "modules",
        "",
    ): "by default the module scanner lists /proc/modules by name only; signatures, out-of-tree and hidden "
    "modules are checked only with --modules-anomalies-only or --modules-summary",
}

# Scanners and the configuration switch without which they emit nothing (ScannerRegistry.cpp and each
# scanner's first lines). Integrity and yara are not even registered when their switch is off.
GATES = {
    "mounts": "hardening",
    "kernel_hardening": "hardening",
    "systemd_units": "hardening",
    "auditd": "hardening",
    "containers": "containers",
    "integrity": "integrity",
    "yara": "rules_enable",
    "processes": "process_inventory",
}

# Scanners that ran but whose emptiness means something other than "nothing found".
EMPTY_MEANS = {
    "network": "5.0.0 files sockets under 'tcp'/'udp', which have no result entry, so none reach the report: "
    "services and connections not assessed",
}

SCOPE_LIMITS = {
    "suid_sgid": "SUID search covers /bin, /sbin, /usr/bin, /usr/sbin, /usr/local only (not /usr/lib, /usr/libexec, "
    "/opt, /home, /tmp)",
    "world_writable": "world-writable search lists top-level files of /usr/bin, /bin, /usr/local/bin, /etc, /var "
    "only (no subdirectories)",
}

NON_ROOT_LIMITS = [
    "not root: IOC checks of /proc/<pid>/exe and environ saw only the scanning user's own processes",
]

MODULES_BY_NAME = "modules listed by name only: no signature, out-of-tree or hidden-module checks"
EBPF_FALLBACK = "no eBPF exec trace: {seconds} s of /proc polling misses short-lived processes"

WARNING_MEANINGS = {
    "proc_unreadable_cmdline": "kernel threads have no command line (expected)",
    "proc_unreadable_status": "processes that exited or could not be read",
    "proc_exe_symlink_unreadable": "other users' executables cannot be resolved without root",
    "param_unreadable": "kernel parameters that could not be read",
    "mounts_unreadable": "/proc/mounts could not be read",
    "net_file_unreadable": "socket tables could not be read",
    "walk_error": "directories that could not be walked",
    "decompress_fail": "compressed module files that could not be read",
}
