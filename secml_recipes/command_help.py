"""`--help` for every `secml` command: argparse's with each option's default, and a key listing for the
recipe-driven commands (train, eval, quantize), whose keys live in dataclasses rather than in an argparse parser.

Kept free of heavy imports: the recipe commands print their keys and exit before any model or data loads.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import enum
import textwrap
from collections.abc import Iterable, Sequence

HELP_FLAGS = ("-h", "--help")
LINE_WIDTH = 120
KEY_COLUMN = 44  # where the help text of a key starts, unless the key and its default are longer


class CommandHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written, and every option's default beside it (argparse shows neither by itself, and
    drops the default of an option without help text)."""

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and _shows_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = (action.help or "").strip()
        if "%(default)" in help_text or not _shows_default(action):
            return action.help
        return f"{help_text} (default: %(default)s)".lstrip()


def _shows_default(action: argparse.Action) -> bool:
    return (
        bool(action.option_strings)
        and not action.required
        and action.default not in (None, False, argparse.SUPPRESS)
        and action.help is not argparse.SUPPRESS
    )


def wants_help(argv: Sequence[str]) -> bool:
    """`-h` or `--help` anywhere on a recipe command line: the keys are listed instead of the recipe being run."""
    return any(arg in HELP_FLAGS for arg in argv)


def _default_text(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "required"
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _one_line(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(width - 1, 0)].rstrip() + "…"


def key_lines(fields: Iterable[dataclasses.Field], skip: Iterable[str] = ()) -> list[str]:
    """One line per key: `--key (default: X)  help`, the help cut to what fits on the line."""
    lines, skipped = [], set(skip)
    for f in fields:
        if not f.init or f.name in skipped:
            continue
        left = f"  --{f.name} (default: {_default_text(f)})"
        help_text = f.metadata.get("help") or ""
        if f.metadata.get("choices"):
            help_text = f"{help_text} [{', '.join(map(str, f.metadata['choices']))}]".strip()
        left = left.ljust(KEY_COLUMN) if len(left) < KEY_COLUMN else left + " "
        lines.append((left + " " + _one_line(help_text, LINE_WIDTH - len(left) - 1)).rstrip())
    return lines


def recipe_help(
    usage: str,
    groups: Sequence[tuple[str, type | Sequence[dataclasses.Field]]],
    description: str = "",
    skip: Iterable[str] = (),
) -> str:
    """Usage, then every key of a recipe command grouped by the dataclass that owns it. A key two groups declare is
    listed in the first (as the recipe parser routes it); keys in `skip` (refused ones) are left out."""
    parts = [f"usage: {usage}"]
    if description:
        parts.append(textwrap.fill(description, LINE_WIDTH))
    seen = set(skip)
    for title, fields in groups:
        fields = dataclasses.fields(fields) if isinstance(fields, type) else fields
        lines = key_lines(fields, skip=seen)
        seen |= {f.name for f in fields}
        if lines:
            parts.append(f"{title}:\n" + "\n".join(lines))
    return "\n\n".join(parts) + "\n"
