"""An enriched output's actions in the order an analyst reads them (higher `priority` first, as sys-scan-agent's
canonical order sorts; ties keep list order), with what each one asks for: the systemd directives and units it
names, the sysctl values it sets, and where in its text it destroys, preserves or contains."""

from __future__ import annotations

import re
from dataclasses import dataclass

from secml_recipes.judge.knowledge import DIRECTIVES, WORDS

_DIRECTIVE = re.compile(r"\b(" + "|".join(DIRECTIVES) + r")\s*=\s*([\w/.:-]*)")
_UNIT = re.compile(r"(?<![\w/.-])([A-Za-z0-9][\w:.@-]*?\.(?:service|socket|timer))\b")
_SYSCTL_SET = re.compile(r"\b((?:kernel|net|fs|vm|user|dev)\.[\w.*-]+[\w])\s*=\s*(-?\d+)\b")


@dataclass
class Action:
    index: int  # position in the output's list, as the output wrote it
    rank: int  # 0 = read first
    text: str
    priority: object

    @property
    def directives(self) -> dict[str, str]:
        return {m.group(1): m.group(2) for m in _DIRECTIVE.finditer(self.text)}

    @property
    def units(self) -> list[str]:
        return sorted(set(_UNIT.findall(self.text)))

    @property
    def sysctl_sets(self) -> dict[str, str]:
        return {m.group(1): m.group(2) for m in _SYSCTL_SET.finditer(self.text)}

    def first(self, words: str | re.Pattern) -> int | None:
        """Where the first match of `words` (a WORDS key or a pattern) starts in the text, or None; a match in a
        negated phrase ("before any restart", "restart nothing") does not count."""
        pattern = WORDS[words] if isinstance(words, str) else words
        for match in pattern.finditer(self.text):
            negated = WORDS["negated_before"].search(self.text[max(0, match.start() - 40) : match.start()])
            if not negated and not WORDS["negated_after"].search(self.text[match.end() :]):
                return match.start()
        return None

    def has(self, words: str | re.Pattern) -> bool:
        return self.first(words) is not None


def ranked_actions(enriched: dict | None) -> list[Action]:
    items = [
        (i, a)
        for i, a in enumerate((enriched or {}).get("actions") or [])
        if isinstance(a, dict) and isinstance(a.get("action"), str)
    ]

    def key(item):
        priority = item[1].get("priority")
        return (-(priority if isinstance(priority, (int, float)) else 0), item[0])

    return [Action(i, rank, a["action"], a.get("priority")) for rank, (i, a) in enumerate(sorted(items, key=key))]
