"""Process evidence: programs users install under their home directory, the names sys-scan's IOC scanner
matches and what each match means, and text that tries to instruct an AI analyst.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from secml_recipes.knowledge_files import STR, frozen, load_table, mapping, record, seq

_DATA = load_table(
    __package__,
    "data/ioc.yaml",
    record(
        {
            "user_writable_roots": seq(STR),
            "scratch_roots": seq(STR),
            "user_apps": seq(record({"pattern": STR, "name": STR, "vendor": STR, "note": STR})),
            "sandboxed_apps": seq(record({"pattern": STR, "kind": STR, "verify": STR})),
            "suspicious_names": mapping(record({"meaning": STR, "technique": STR})),
            "strong_names": seq(STR),
            "system_program_names": seq(STR),
            "miner_hints": STR,
            "interpreters": seq(STR),
            "injection_patterns": seq(STR),
        }
    ),
)
USER_WRITABLE_ROOTS: tuple[str, ...] = frozen(_DATA["user_writable_roots"])
SCRATCH_ROOTS: tuple[str, ...] = frozen(_DATA["scratch_roots"])  # world-writable, no per-user ownership


@dataclass(frozen=True)
class UserApp:
    pattern: str  # regex on the executable path
    name: str
    vendor: str
    note: str


# Programs people install per user: the IOC heuristic flags them because they run from /home.
USER_APPS = [UserApp(**row) for row in _DATA["user_apps"]]

# Process names the IOC scanner matches in command lines -> (what a match means, ATT&CK id or "")
SUSPICIOUS_NAMES = {name: (row["meaning"], row["technique"]) for name, row in _DATA["suspicious_names"].items()}
STRONG_NAMES = set(_DATA["strong_names"])
SYSTEM_PROGRAM_NAMES = frozenset(_DATA["system_program_names"])
MINER_HINTS = re.compile(_DATA["miner_hints"], re.I)


INTERPRETERS: tuple[str, ...] = frozen(_DATA["interpreters"])


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


@dataclass(frozen=True)
class SandboxedApp:
    kind: str  # snap, Flatpak
    name: str  # the package (snap name, Flatpak application id)
    verify: str  # the command that shows where the package came from


SANDBOXED_APPS = [(re.compile(row["pattern"]), row["kind"], row["verify"]) for row in _DATA["sandboxed_apps"]]


def sandboxed_app(path: str) -> SandboxedApp | None:
    """The snap or Flatpak a path belongs to (`/snap/firefox/5437/usr/lib/firefox/firefox` -> snap firefox)."""
    for pattern, kind, verify in SANDBOXED_APPS:
        match = pattern.search(path)
        if match:
            return SandboxedApp(kind, match["name"], verify.format(name=match["name"]))
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
INJECTION_PATTERNS = [re.compile(pattern, re.I) for pattern in _DATA["injection_patterns"]]


def injection_text(text: str) -> str | None:
    """The first stretch of `text` that reads as an instruction to an AI analyst, or None."""
    for pattern in INJECTION_PATTERNS:
        match = pattern.search(text or "")
        if match:
            start = max(0, match.start() - 10)
            return text[start : match.end() + 60].strip()
    return None
