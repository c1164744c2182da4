"""What sys-scan 5.0.0 (commit a2ceff7) really checks, read from its C++ sources, and what it leaves out.

The teacher quotes these meanings in rationales instead of guessing from a flag's name: the IOC flag
`world_writable_executable`, for one, never looks at permissions.
"""

from __future__ import annotations

from secml_recipes.knowledge_files import STR, load_table, mapping, record, seq

_DATA = load_table(
    __package__,
    "data/scanner.yaml",
    record(
        {
            "flag_meanings": seq(record({"scanner": STR, "flag": STR, "meaning": STR})),
            "gates": mapping(STR),
            "empty_means": mapping(STR),
            "scope_limits": mapping(STR),
            "non_root_limits": seq(STR),
            "modules_by_name": STR,
            "ebpf_fallback": STR,
            "warning_meanings": mapping(STR),
        }
    ),
)
# (scanner, metadata flag or rule) -> what the source checks
FLAG_MEANINGS = {(row["scanner"], row["flag"]): row["meaning"] for row in _DATA["flag_meanings"]}

# scanner -> the configuration switch without which it emits nothing
GATES: dict[str, str] = _DATA["gates"]

EMPTY_MEANS: dict[str, str] = _DATA["empty_means"]

SCOPE_LIMITS: dict[str, str] = _DATA["scope_limits"]

NON_ROOT_LIMITS: list[str] = _DATA["non_root_limits"]

MODULES_BY_NAME: str = _DATA["modules_by_name"]
EBPF_FALLBACK: str = _DATA["ebpf_fallback"]

WARNING_MEANINGS: dict[str, str] = _DATA["warning_meanings"]
