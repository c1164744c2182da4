"""Compromises that show in what a process does, not in its name, and the text intruders write for an AI
analyst: the samples the episodes plant (`data/behaviours.yaml`) and the simulated host acts out.

A sample is found again from the IOC finding it became (its executable, with `{home}` standing for any home
directory), so the simulation needs nothing beyond the scan to answer for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from secml_recipes.knowledge_files import BOOL, STR, frozen, load_table, mapping, record, seq

_DATA = load_table(
    __package__,
    "data/behaviours.yaml",
    record(
        {
            "samples": seq(
                record(
                    {
                        "exe": STR,
                        "argv0": STR,
                        "deleted": BOOL,
                        "user": STR,
                        "parent": STR,
                        "started_by": mapping(STR),
                        "remote": STR,
                        "remote_is": STR,
                        "loader": mapping(STR),
                        "changed_with": seq(STR),
                        "malicious": BOOL,
                        "family": STR,
                    }
                )
            ),
            "injections": seq(STR),
        }
    ),
)


@dataclass(frozen=True)
class Behaviour:
    exe: str
    argv0: str
    deleted: bool
    user: str
    parent: str
    started_by: dict
    remote: str
    remote_is: str
    loader: dict
    changed_with: tuple[str, ...]
    malicious: bool
    family: str

    def filled(self, home: str, user: str) -> Behaviour:
        """The sample on one host: `{home}` and `{user}` replaced everywhere."""

        def fill(value):
            if isinstance(value, str):
                return value.replace("{home}", home).replace("{user}", user)
            if isinstance(value, dict):
                return {k: fill(v) for k, v in value.items()}
            if isinstance(value, tuple):
                return tuple(fill(v) for v in value)
            return value

        return Behaviour(**{k: fill(v) for k, v in self.__dict__.items()})


SAMPLES: tuple[Behaviour, ...] = tuple(Behaviour(**frozen(row)) for row in _DATA["samples"])
INJECTIONS: tuple[str, ...] = tuple(_DATA["injections"])


def _pattern(exe: str, argv0: str) -> re.Pattern:
    """exe and argv[0] (as the finding holds it: its first 127 characters, any home directory)."""
    user = re.escape(exe).replace(r"\{home\}", "/home/(?P<user>[^/]+)", 1)
    return re.compile("^" + user + "\n" + re.escape(argv0).replace(r"\{home\}", "/home/[^/]+"))


_PATTERNS = [(_pattern(s.exe, s.argv0), s) for s in SAMPLES]


def planted_sample(exe: str, command: str) -> Behaviour | None:
    """The sample behind an IOC finding (its executable, " (deleted)" ignored, and its argv[0]), filled in for
    the home it runs from; None for any other process."""
    key = exe.replace(" (deleted)", "") + "\n" + command
    if len(command) >= 127:
        return None  # no sample's argv[0] is cut short
    for pattern, sample in _PATTERNS:
        match = pattern.match(key)
        if match:
            user = match.groupdict().get("user") or "root"
            return sample.filled(f"/home/{user}", user)
    return None
