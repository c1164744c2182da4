"""Process evidence: programs users install under their home directory, the names sys-scan's IOC scanner
matches and what each match means, and text that tries to instruct an AI analyst.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

USER_WRITABLE_ROOTS = ("/tmp/", "/dev/shm/", "/var/tmp/", "/home/", "/run/user/")
SCRATCH_ROOTS = ("/tmp/", "/dev/shm/", "/var/tmp/")  # world-writable scratch space, no per-user ownership


@dataclass(frozen=True)
class UserApp:
    pattern: str  # regex on the executable path
    name: str
    vendor: str
    note: str


# Programs people install per user: the IOC heuristic flags them because they run from /home.
USER_APPS = [
    UserApp(*row)
    for row in [
        (
            r"/jetbrains-toolbox[^/]*/bin/jetbrains-toolbox$",
            "JetBrains Toolbox",
            "JetBrains",
            "unpacked from the vendor's tarball by the user; it updates itself in place",
        ),
        (
            r"/\.local/share/JetBrains/Toolbox/",
            "JetBrains Toolbox or an IDE it manages",
            "JetBrains",
            "installed by JetBrains Toolbox under the user's home",
        ),
        (r"/\.vscode-server/", "VS Code Server", "Microsoft", "installed by VS Code Remote-SSH on first connection"),
        (
            r"/\.vscode(-server)?/extensions/",
            "a VS Code extension's helper",
            "Microsoft",
            "VS Code installs extensions and their native helpers (cpptools, language servers) under the user's home",
        ),
        (r"/\.cursor-server/", "Cursor server", "Anysphere", "installed by the Cursor editor's remote extension"),
        (r"/\.local/share/Steam/|/\.steam/", "Steam", "Valve", "Steam's runtime lives in the user's home"),
        (r"/(mini|ana)conda3?/|/\.conda/", "Conda environment", "Anaconda", "Python environments installed per user"),
        (r"/\.nvm/versions/node/", "Node.js (nvm)", "nvm", "Node.js versions installed per user by nvm"),
        (r"/\.cargo/bin/|/\.rustup/", "Rust toolchain", "rustup", "Rust toolchains installed per user by rustup"),
        (r"/\.pyenv/versions/", "Python (pyenv)", "pyenv", "Python builds installed per user by pyenv"),
        (r"/go/bin/|/\.local/go/", "Go toolchain or Go-built tool", "Go", "installed per user by go install"),
        (r"/\.local/share/flatpak/", "Flatpak app (per-user install)", "Flathub", "a user-scope Flatpak"),
        (r"\.AppImage$|/tmp/\.mount_", "AppImage", "AppImage", "an AppImage mounts itself under /tmp/.mount_*"),
        (r"/Discord/Discord$|/discord/Discord$", "Discord", "Discord", "unpacked from the vendor's tarball"),
        (r"/\.local/bin/", "a tool in ~/.local/bin", "unknown", "pip --user and manual installs land here"),
    ]
]

# Process names the IOC scanner matches in command lines (IOCScanner.cpp), with what a match means.
SUSPICIOUS_NAMES = {
    "xmrig": ("a cryptocurrency miner", "T1496"),
    "minerd": ("a cryptocurrency miner", "T1496"),
    "cryptominer": ("a cryptocurrency miner", "T1496"),
    "kworker": ("a user-space process named like a kernel worker thread", "T1036.004"),
    "kthreadd": ("a user-space process named like the kernel thread daemon", "T1036.004"),
    "malware": ("a command line containing the word 'malware'", ""),
    "bot": ("the substring 'bot' (also matches robot, bottle, chatbot, ...)", ""),
}
STRONG_NAMES = {"xmrig", "minerd", "cryptominer", "kworker", "kthreadd"}
# Names of system programs that live in /usr (daemons, session helpers): a copy running from scratch space
# or a hidden directory is masquerading (ATT&CK T1036.005), since no package installs them there.
SYSTEM_PROGRAM_NAMES = frozenset(
    {
        "sshd",
        "dbus-daemon",
        "dbus-launch",
        "systemd",
        "systemd-journald",
        "systemd-logind",
        "systemd-resolved",
        "systemd-timesyncd",
        "systemd-udevd",
        "init",
        "cron",
        "crond",
        "atd",
        "rsyslogd",
        "syslogd",
        "auditd",
        "agetty",
        "login",
        "sudo",
        "su",
        "polkitd",
        "NetworkManager",
        "chronyd",
        "cupsd",
        "avahi-daemon",
        "nginx",
        "apache2",
        "httpd",
        "mysqld",
        "postgres",
        "containerd",
        "dockerd",
        "kubelet",
        "snapd",
        "udisksd",
        "accounts-daemon",
        "gnome-shell",
        "Xorg",
        "pulseaudio",
        "pipewire",
    }
)
MINER_HINTS = re.compile(r"stratum\+tcp://|--donate-level|pool\.|:3333\b|:4444\b|:14444\b", re.I)


INTERPRETERS = ("python", "perl", "bash", "sh", "dash", "node", "ruby", "php")


def script_path(command: str) -> str | None:
    """The script an interpreter runs from a user-writable place, if the command line names one (5.0.0 reports
    argv[0] only, so this needs a process that rewrote its argv[0] as one string, as setproctitle does)."""
    words = command.split()
    if not words or not words[0].rsplit("/", 1)[-1].startswith(INTERPRETERS):
        return None
    for arg in words[1:]:
        if arg.startswith(SCRATCH_ROOTS + ("/home/",)):
            return arg
    return None


def program_names(exe: str, command: str) -> list[str]:
    """Names from the scanner's list that are the program's own name (the executable's or argv[0]'s basename),
    not merely a substring of a path or an argument."""
    own = {exe.rsplit("/", 1)[-1].lower(), (command.split() or [""])[0].rsplit("/", 1)[-1].lower()}
    return [n for n in suspicious_names(" ".join(own)) if n in STRONG_NAMES and any(w.startswith(n) for w in own)]


def user_app(path: str) -> UserApp | None:
    for app in USER_APPS:
        if re.search(app.pattern, path):
            return app
    return None


def hidden_component(path: str) -> str | None:
    """A dot-directory in the path other than the well-known per-user tool folders (.local, .config,
    .cache, .vscode-server, ...), e.g. '/tmp/.x/' or '/home/u/.config/.update/'."""
    known = {
        ".local",
        ".config",
        ".cache",
        ".vscode-server",
        ".vscode",
        ".cursor-server",
        ".steam",
        ".nvm",
        ".cargo",
        ".rustup",
        ".pyenv",
        ".conda",
        ".mount",
    }
    for part in path.split("/")[1:-1]:
        if part.startswith(".") and part not in known and not part.startswith(".mount_"):
            return part
    return None


def suspicious_names(command: str) -> list[str]:
    """Names from the scanner's list found in a command line (lower case), strongest first."""
    text = command.lower()
    hits = [name for name in SUSPICIOUS_NAMES if name in text]
    return sorted(hits, key=lambda n: (n not in STRONG_NAMES, n))


# Text in scan data addressed to an AI analyst: what the teacher and the episodes report as tampering.
INJECTION_PATTERNS = [
    re.compile(p, re.I)
    for p in [
        r"ignore (all )?(previous|prior|above) instructions",
        r"\b(assistant|ai|analyst|model) (must|should|shall)\b",
        r"note to (the )?ai\b",
        r"new instructions\s*:",
        r"\bsystem\s*:\s*the assistant\b",
        r"report that this host is clean",
        r"mark (every|all) findings? as benign",
        r"</?(scan|system|instructions?)>",
        r"\bwhitelisted\b.*\bbenign\b",
    ]
]


def injection_text(text: str) -> str | None:
    """The first stretch of `text` that reads as an instruction to an AI analyst, or None."""
    for pattern in INJECTION_PATTERNS:
        match = pattern.search(text or "")
        if match:
            start = max(0, match.start() - 10)
            return text[start : match.end() + 60].strip()
    return None
