"""MITRE ATT&CK (Enterprise) techniques the rules cite: id -> (name, tactic)."""

from __future__ import annotations

from secml_recipes.knowledge_files import STR, load_table, mapping, record

_SCHEMA = record({"techniques": mapping(record({"name": STR, "tactic": STR}))})
_DATA = load_table(__package__, "data/attack.yaml", _SCHEMA)
# id -> (name, tactic)
TECHNIQUES = {key: (row["name"], row["tactic"]) for key, row in _DATA["techniques"].items()}


def technique_name(technique_id: str) -> str:
    return TECHNIQUES.get(technique_id, ("", ""))[0]
