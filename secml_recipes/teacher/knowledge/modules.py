"""Kernel modules: vendor modules that are out-of-tree or unsigned by design, known rootkit module names,
and modules whose presence says something about the host's role."""

from __future__ import annotations

import re

from secml_recipes.knowledge_files import INT, STR, load_table, mapping, record, seq

_TAINT = record({"bit": INT, "letter": STR, "name": STR, "meaning": STR})
_DATA = load_table(
    __package__,
    "data/modules.yaml",
    record(
        {
            "vendor_modules": mapping(STR),
            "rootkit_modules": seq(STR),
            "notable_modules": seq(STR),
            "kernel_taint_bits": seq(_TAINT),
            "module_taints": seq(INT),
            "oversized_intree_modules": seq(STR),
        }
    ),
)
# regular expression on the module name -> what the module is
VENDOR_MODULES: dict[str, str] = _DATA["vendor_modules"]

ROOTKIT_MODULES = set(_DATA["rootkit_modules"])

NOTABLE_MODULES = set(_DATA["notable_modules"])


def vendor_module(name: str) -> str | None:
    for pattern, what in VENDOR_MODULES.items():
        if re.match(pattern, name):
            return what
    return None


def rootkit_module(name: str) -> bool:
    return name.lower() in ROOTKIT_MODULES


# bit -> (letter, name, what it means)
KERNEL_TAINT_BITS = {row["bit"]: (row["letter"], row["name"], row["meaning"]) for row in _DATA["kernel_taint_bits"]}
MODULE_TAINTS = set(_DATA["module_taints"])

OVERSIZED_INTREE_MODULES = set(_DATA["oversized_intree_modules"])


def taint_bits(value: str) -> list[int]:
    """The set bits of a /proc/sys/kernel/tainted value ('' or garbage: none)."""
    number = int(value) if str(value).isdigit() else 0
    return [bit for bit in range(max(number.bit_length(), 1)) if number >> bit & 1]
