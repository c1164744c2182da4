"""Tool calls in text: the canonical JSON every runtime prints alike, and parsers for the families' formats.

Canonical JSON. A chat template, llama.cpp (the same Jinja template) and Ollama (a Go template) must print a
conversation byte for byte alike, or a model meets at serving time a prompt it was not trained on. Go's
`encoding/json` is the least flexible of the three printers, so the canonical form is what it prints: compact,
object keys sorted, `<`, `>` and `&` escaped as \\u003c, \\u003e, \\u0026. `canonical_conversation` turns a
conversation into that form before rendering (tool-call arguments as canonical JSON strings, tool schemas in
the shape Ollama keeps of them); the templates print strings verbatim and dicts through the same escapes.

Parsers. Each family writes calls in its own format (a `ToolCallFormat`: a row of data, not code); `parse_turn`
splits one assistant output into its text and its calls, or says why the calls are malformed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def _go_float(x: float) -> str:
    """A float as Go's encoding/json prints it (shortest digits; exponent only below 1e-6 or from 1e21)."""
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError(f"{x} has no JSON form")
    if abs(x) != 0 and (abs(x) < 1e-6 or abs(x) >= 1e21):
        mantissa, _, exp = repr(x).partition("e")
        return f"{mantissa}e{exp[0]}{int(exp[1:])}"
    return format(Decimal(repr(x)), "f")


def _with_go_numbers(value: Any, floats: list[str]) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return int(value)
        floats.append(_go_float(value))
        return f"\0float{len(floats) - 1}\0"
    if isinstance(value, dict):
        return {str(k): _with_go_numbers(v, floats) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_with_go_numbers(v, floats) for v in value]
    raise TypeError(f"{type(value).__name__} is not JSON")


def go_json(value: Any, sort_keys: bool = True) -> str:
    """`value` printed as Go's json.Marshal prints it (keys sorted unless `sort_keys` is False, for values
    whose order is already Go's struct order)."""
    floats: list[str] = []
    text = json.dumps(_with_go_numbers(value, floats), ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)
    for i, number in enumerate(floats):
        text = text.replace(f'"\\u0000float{i}\\u0000"', number)
    return _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group()], text)


def canonical_arguments(arguments: str | dict | None) -> str:
    """Tool-call arguments (a JSON string, as OpenAI clients send them, or a dict) as canonical JSON."""
    if arguments is None or arguments == "":
        return "{}"
    return go_json(json.loads(arguments) if isinstance(arguments, str) else arguments)


def _sorted_any(value: Any) -> Any:
    """A JSON value whose objects print with sorted keys (how Go prints an `any` decoded from JSON)."""
    if isinstance(value, dict):
        return {k: _sorted_any(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_any(v) for v in value]
    return value


def _schema_type(t: Any) -> Any:
    return t[0] if isinstance(t, list) and len(t) == 1 else t


def _ollama_property(p: dict, sort_properties: bool = False) -> dict:
    """One property schema as Ollama keeps it (api.ToolProperty: these keys, in this order; others dropped)."""
    out: dict[str, Any] = {}
    if p.get("anyOf"):
        out["anyOf"] = [_ollama_property(x) for x in p["anyOf"]]
    if p.get("type"):
        out["type"] = _schema_type(p["type"])
    if p.get("items") is not None:
        out["items"] = _sorted_any(p["items"])
    if p.get("description"):
        out["description"] = p["description"]
    if p.get("enum"):
        out["enum"] = _sorted_any(p["enum"])
    if p.get("properties") is not None:
        names = sorted(p["properties"]) if sort_properties else list(p["properties"])
        out["properties"] = {k: _ollama_property(p["properties"][k]) for k in names}
    if p.get("required"):
        out["required"] = list(p["required"])
    return out


def ollama_tool_view(tool: dict) -> dict:
    """A tool schema in the shape Ollama hands its templates: its struct's keys in its order, JSON-schema
    keywords it does not model (minimum, pattern, additionalProperties, ...) dropped, top-level properties
    sorted by name. Rendering this view is what lets a Modelfile print the tools as training printed them."""
    fn = tool.get("function", {})
    params = fn.get("parameters") or {}
    view: dict[str, Any] = {"type": tool.get("type", "")}
    if tool.get("items") is not None:
        view["items"] = _sorted_any(tool["items"])
    parameters: dict[str, Any] = {"type": params.get("type", "")}
    for key in ("$defs", "items"):
        if params.get(key) is not None:
            parameters[key] = _sorted_any(params[key])
    if params.get("required"):
        parameters["required"] = list(params["required"])
    props = params.get("properties")
    parameters["properties"] = None if props is None else {k: _ollama_property(props[k]) for k in sorted(props)}
    view["function"] = {"name": fn.get("name", ""), "description": fn.get("description", ""), "parameters": parameters}
    return view


def canonical_conversation(
    messages: list[dict], tools: list[dict] | str | None = None
) -> tuple[list[dict], list[dict] | None]:
    """`messages` and `tools` in the form every runtime renders alike (see module doc). OpenAI-style input:
    assistant `tool_calls` with `function.arguments` as a JSON string or dict, `tool` messages with
    `tool_call_id` and `name`. The input is not modified."""
    if isinstance(tools, str):
        tools = json.loads(tools)
    out = []
    for m in messages:
        m = dict(m)
        if m.get("content") is None:
            m["content"] = ""
        if m.get("tool_calls"):
            calls = []
            for call in m["tool_calls"]:
                fn = call.get("function", call)
                calls.append(
                    {
                        "id": call.get("id"),
                        "type": "function",
                        "function": {"name": fn["name"], "arguments": canonical_arguments(fn.get("arguments"))},
                    }
                )
            m["tool_calls"] = calls
        out.append(m)
    return out, ([ollama_tool_view(t) for t in tools] if tools else None)


def canonical_row(row: dict) -> dict:
    """A dataset row (`messages` or `prompt`/`completion`, optional `tools` JSON string) in canonical form, for
    `datasets.map`: tools stay a JSON string so that Arrow never merges differing schemas."""
    tools = row.get("tools")
    update: dict[str, Any] = {}
    for key in ("messages", "prompt", "completion"):
        if row.get(key):
            update[key] = canonical_conversation(row[key])[0]
    if tools:
        update["tools"] = json.dumps(canonical_conversation([], tools)[1])
    return update


# --- parsing ------------------------------------------------------------------------------------------------


@dataclass
class ParsedTurn:
    """One assistant output: its text, the calls it makes, and why its calls could not be read (if so).
    `attempted` says the output opened a tool-call block at all (a malformed block counts)."""

    content: str
    calls: list[dict] = field(default_factory=list)  # {"id": str | None, "name": str, "arguments": dict}
    malformed: str | None = None
    attempted: bool = False
    reasoning: str | None = None  # a leading think block (Qwen3), when the format has one

    @property
    def is_final(self) -> bool:
        return not self.calls and self.malformed is None


@dataclass(frozen=True)
class ToolCallFormat:
    """How a family writes the calls of one assistant turn (see docs/models.md for each family's format).

    kind: `tagged` (each call's JSON between `open` and `close`), `json_list` (`open` then one JSON list of
    calls), `json_objects` (`open`, then call objects separated by `separator`; a turn that is only a call
    object needs no `open`), `fenced` (`open`, one call object per line, `close`).
    args_key: where the arguments are ("arguments", or Llama 3.1's "parameters").
    native_ids: the format carries call ids (`"id"` in the call, `call_id` in the result); otherwise calls
    and results are matched by position and `parse_turn` returns id None.
    reasoning: the (open, close) tags of a think block that may open the turn (Qwen3), split off first.
    """

    kind: str
    open: str
    close: str = ""
    args_key: str = "arguments"
    separator: str = ""
    native_ids: bool = False
    reasoning: tuple[str, str] | None = None

    def describe(self) -> str:
        """One line for the run-settings table, e.g. `<tool_call>...</tool_call> per call`."""
        text = {
            "tagged": f"{self.open}...{self.close} per call",
            "json_list": f"{self.open} then a JSON list of calls",
            "json_objects": f"{self.open} then call objects separated by {self.separator!r}",
            "fenced": f"{self.open} fence, one call per line",
        }[self.kind]
        if self.native_ids:
            text += ", with call ids"
        if self.reasoning:
            text += f"; a {self.reasoning[0]} block may open the turn"
        return text


def _decode_calls_seq(text: str, separator: str) -> list:
    """JSON values back to back, separated by `separator` (and whitespace)."""
    decoder, values, pos = json.JSONDecoder(), [], 0
    text = text.strip()
    while pos < len(text):
        value, pos = decoder.raw_decode(text, pos)
        values.append(value)
        rest = text[pos:].lstrip()
        if separator and rest.startswith(separator.strip()):
            rest = rest[len(separator.strip()) :].lstrip()
        pos = len(text) - len(rest)
    return values


def _split_calls(fmt: ToolCallFormat, text: str) -> tuple[str, list] | None:
    """(content, raw call values) or None when there is no call block; raises ValueError when malformed."""
    if fmt.kind == "tagged":
        if fmt.open not in text:
            return None
        content, _, rest = text.partition(fmt.open)
        values = []
        for chunk in (fmt.open + rest).split(fmt.open)[1:]:
            body, closed, _ = chunk.partition(fmt.close)
            if not closed:
                raise ValueError(f"{fmt.open} without {fmt.close}")
            values.append(json.loads(body))
        return content, values
    if fmt.kind == "json_list":
        if fmt.open not in text:
            return None
        content, _, rest = text.partition(fmt.open)
        value, _ = json.JSONDecoder().raw_decode(rest.strip())
        return content, value if isinstance(value, list) else [value]
    if fmt.kind == "json_objects":
        if fmt.open in text:
            content, _, rest = text.partition(fmt.open)
        elif text.lstrip().startswith('{"name"'):
            content, rest = "", text
        else:
            return None
        return content, _decode_calls_seq(rest, fmt.separator)
    if fmt.kind == "fenced":
        if fmt.open not in text:
            return None
        content, _, rest = text.partition(fmt.open)
        body, closed, _ = rest.partition(fmt.close)
        if not closed:
            raise ValueError(f"{fmt.open.strip()} block without its closing {fmt.close.strip()}")
        return content, [json.loads(line) for line in body.splitlines() if line.strip()]
    raise ValueError(f"unknown tool-call format kind {fmt.kind!r}")


def parse_turn(fmt: ToolCallFormat, text: str) -> ParsedTurn:
    """Split an assistant output into its text and calls in `fmt`'s format."""
    reasoning = None
    if fmt.reasoning and text.lstrip().startswith(fmt.reasoning[0]) and fmt.reasoning[1] in text:
        head, _, text = text.lstrip()[len(fmt.reasoning[0]) :].partition(fmt.reasoning[1])
        reasoning = head.strip("\n")
    turn = _parse_calls(fmt, text)
    turn.reasoning = reasoning
    return turn


def _parse_calls(fmt: ToolCallFormat, text: str) -> ParsedTurn:
    try:
        split = _split_calls(fmt, text)
    except (ValueError, json.JSONDecodeError) as err:
        reason = f"tool calls are not JSON: {err.msg}" if isinstance(err, json.JSONDecodeError) else str(err)
        return ParsedTurn(content=text.partition(fmt.open)[0].strip(), malformed=reason, attempted=True)
    if split is None:
        return ParsedTurn(content=text.strip())
    content, values = split
    content = content.strip()
    if not values:
        return ParsedTurn(content=content, malformed="a tool-call block with no call", attempted=True)
    calls = []
    for value in values:
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            return ParsedTurn(content=content, malformed="each tool call needs a string 'name'", attempted=True)
        args = value.get(fmt.args_key, value.get("arguments", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                return ParsedTurn(content=content, malformed="tool call arguments are not JSON", attempted=True)
        if not isinstance(args, dict):
            return ParsedTurn(content=content, malformed="tool call arguments must be a JSON object", attempted=True)
        calls.append({"id": value.get("id") if fmt.native_ids else None, "name": value["name"], "arguments": args})
    return ParsedTurn(content=content, calls=calls, attempted=True)
