"""Files root runs or loads on its own (crontab, shell profiles, /etc/ld.so.preload, rc.local, unit files): what
reads each, its ATT&CK technique, and how to read what it holds before anyone changes its mode."""

from __future__ import annotations

from dataclasses import dataclass

from secml_recipes.knowledge_files import STR, load_table, record, seq


@dataclass(frozen=True)
class AutostartFile:
    prefix: str
    reads: str  # what runs or loads it
    technique: str
    inspect: str  # the first step, with {owner} for the package-owner command


_ROW = record(dict.fromkeys(AutostartFile.__dataclass_fields__, STR))
_DATA = load_table(__package__, "data/autostart.yaml", record({"autostart": seq(_ROW)}))
AUTOSTART = [AutostartFile(**{k: " ".join(v.split()) for k, v in row.items()}) for row in _DATA["autostart"]]


def autostart_file(path: str) -> AutostartFile | None:
    return next((row for row in AUTOSTART if path.startswith(row.prefix)), None)
