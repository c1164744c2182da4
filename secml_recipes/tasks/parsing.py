"""Reading what a model wrote: the specialist's JSON report out of its text (tool calls are read by each family's
parser, `families/toolcalls.py`, through `tool_loop`)."""

from __future__ import annotations

import json


def parse_json_output(text: str) -> dict | None:
    """The JSON object a model wrote: the whole text, or the outermost {...} when wrapped in prose/fences."""
    text = text.strip()
    for candidate in (text, text[text.find("{") : text.rfind("}") + 1] if "{" in text else ""):
        try:
            value = json.loads(candidate)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(value, dict):
            return value
    return None
