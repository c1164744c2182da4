"""What a model may write, as constraints for decoding: the enriched report of one report part and the tool calls
of one assistant turn. One builder for every consumer (evaluation, triage, agent, serve, the sys-scan-agent
provider); the runtimes turn a `Constraint` into their grammar (use/constrained.py).

The enriched report's schema (schemas/enriched-output.schema.json) says what is valid, not what can be decoded:
its open objects and unbounded strings and lists let a small model add keys of its own and repeat itself until the
token limit, and its regex `pattern`s break llama.cpp's grammar converter. The decode-time schema derived here is
a restriction of it: every object closed, every string and list bounded (decode_bounds.yaml), no patterns, and
the ids limited to what the input holds: a finding id only one of the part's findings, a reference to a finding
elsewhere only one the part's context names, a correlation id only one the correlation rules can form from those
ids. Anything valid under it is valid under the original schema (and so for sys-scan-agent's EnrichedOutput).

A tool call is one of the declared tools with arguments under the tool's schema, where a path or pid argument is
limited to the paths and pids the scan holds, and is written in the model family's own call format.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import cache

from secml_recipes.families.toolcalls import ToolCallFormat
from secml_recipes.knowledge_files import INT, load_table, mapping, record, seq
from secml_recipes.scan.spec_5_0_0 import SCANNERS
from secml_recipes.tasks.validate import SCHEMA_DIR
from secml_recipes.teacher.correlate import RULES
from secml_recipes.teacher.knowledge.attack import TECHNIQUES

_VALUE_KINDS = ["paths", "pids", "finding_ids", "scanners", "attack_techniques"]
_SHAPE_TYPES = ["integer", "number", "string", "strings", "severity"]
_BOUNDS_SCHEMA = record(
    {
        "report": record(
            {
                "max_length": mapping(INT),
                "max_items": mapping(INT),
                "open_objects": mapping(mapping({"enum": _SHAPE_TYPES})),
                "integer_range": mapping(seq(INT, 2)),
                "omit": seq({"type": "string"}),
                "require": mapping(seq({"type": "string"})),
            }
        ),
        "tools": record(
            {
                "arguments": mapping(
                    {
                        "oneOf": [
                            {"enum": _VALUE_KINDS},
                            record(
                                {},
                                {
                                    "min_length": INT,
                                    "max_length": INT,
                                    "pattern": {"type": "string", "pattern": "^[^\\\\]*$"},
                                },
                            ),
                        ]
                    }
                ),
                "max_length": INT,
                "calls_per_turn": INT,
                "lead_chars": INT,
            }
        ),
    }
)
BOUNDS = load_table(__package__, "decode_bounds.yaml", _BOUNDS_SCHEMA)
_CONTEXT_MAPS = {"not_run": "scanners", "ran_empty": "scanners", "warnings": "warning_codes"}
_PATH = re.compile(r"(?<![\w.~])/[A-Za-z0-9._+@,=\-/]*[A-Za-z0-9_+\-](?: \(deleted\))?")
_PID = re.compile(r"pid\W{0,4}(\d+)")  # "pid": "123", "ppid":45, pid 123


@dataclass(frozen=True)
class Constraint:
    """What one generation must be: a JSON value under `schema`; with `tool_format`, a tool turn as `tool_choice`
    says (OpenAI's names): "required" tool calls in that format (each call a value under `schema`, at most
    `max_calls`, after at most one line of up to `lead_chars` characters), "auto" those or a plain-text answer that
    opens no call block (the final answer of a tool loop), "none" only that answer."""

    schema: dict
    tool_format: ToolCallFormat | None = None
    max_calls: int = 1
    tool_choice: str = "required"
    lead_chars: int = 400

    @property
    def or_text(self) -> bool:
        """Whether a plain-text answer is allowed (a tool turn that need not call)."""
        return self.tool_choice != "required"

    @property
    def calls(self) -> bool:
        """Whether tool calls are allowed."""
        return self.tool_choice != "none"

    @property
    def text_only(self) -> bool:
        """Whether the answer is plain text only (a tool turn under "none"): one that loops may be stopped as a free
        one is (`use/loops.py` `is_looping`), since any prefix of it is a valid answer."""
        return self.tool_format is not None and not self.calls

    @property
    def closes_loops(self) -> bool:
        """Whether a cycle in the answer is closed early (`use/loops.py`): a JSON answer's strings and lists, not a
        tool turn, whose line of text has no string to close."""
        return self.tool_format is None


# --- the enriched report --------------------------------------------------------------------------------------------


@cache
def _enriched_schema() -> dict:
    return json.loads((SCHEMA_DIR / "enriched-output.schema.json").read_text())


def _findings(report: dict) -> list[tuple[str, dict]]:
    return [(r.get("scanner", ""), f) for r in report.get("results") or [] for f in r.get("findings") or []]


def _unique(values) -> list:
    return list(dict.fromkeys(v for v in values if v not in (None, "")))


def part_values(part_report: dict) -> dict[str, list[str]]:
    """The names a report part allows: its own finding ids, those of the findings its context names from the rest
    of the host, correlation ids the rules can form from them, scanners and warning codes."""
    context = (part_report.get("meta") or {}).get("secml_context") or {}
    own = _unique(str(f.get("id")) for _, f in _findings(part_report))
    known = _unique([*own, *(str(f.get("id")) for f in context.get("elsewhere") or [])])
    scanners = _unique(
        [*SCANNERS, *(s for s, _ in _findings(part_report)), *(context.get("scanner_finding_counts") or {})]
    )
    codes = _unique(
        [
            *(w.get("code") for w in part_report.get("collection_warnings") or []),
            *(context.get("warning_counts") or {}),
            "unknown",
        ]
    )
    correlations = _unique(
        f"corr:{rule.rule}" if rule.per_host else f"corr:{rule.rule}:{i}" for rule in RULES for i in known
    )
    return {
        "own_ids": own,
        "known_ids": known,
        "correlation_ids": correlations,
        "scanners": scanners,
        "warning_codes": codes,
        "attack_techniques": sorted(TECHNIQUES),
    }


def _string(name: str, values: list[str] | None = None, min_length: int = 0) -> dict:
    if values is not None:
        return {"enum": list(values)}
    lengths = BOUNDS["report"]["max_length"]
    schema = {"type": "string", "maxLength": lengths.get(name, lengths["default"])}
    if min_length:
        schema["minLength"] = min_length
    return schema


def _id_values(path: tuple[str, ...], values: dict) -> list[str] | None:
    """The names a string at `path` is limited to, or None for free text."""
    parent, name = path[-2] if len(path) > 1 else "", path[-1]
    if name == "id":
        return {
            "enriched_findings": values["own_ids"],
            "correlations": values["correlation_ids"],
        }.get(parent)
    return {
        "related_finding_ids": values["known_ids"],
        "correlation_refs": values["correlation_ids"],
        "techniques": values["attack_techniques"],
    }.get(name)


def _shape(name: str) -> dict:
    """A closed object for one of the schema's open objects (decode_bounds.yaml `open_objects`)."""
    props = {}
    for key, kind in BOUNDS["report"]["open_objects"][name].items():
        props[key] = {
            "integer": {"type": "integer"},
            "number": {"type": "number"},
            "string": {"type": "string"},
            "strings": {"type": "array", "items": {"type": "string"}},
            "severity": {"$ref": "#/$defs/severity"},
        }[kind]
    return {"type": "object", "properties": props, "required": sorted(props), "additionalProperties": False}


def _unsatisfiable(schema: dict) -> bool:
    """No value fits `schema`: an empty enum (no id the part could name), or an object that requires such a key (a
    correlation on a part whose host offers no correlation id). A list of such items can only be empty."""
    if "enum" in schema:
        return not schema["enum"]
    props = schema.get("properties") or {}
    return any(_unsatisfiable(props[k]) for k in schema.get("required", []) if k in props)


def _decode(schema: dict, path: tuple[str, ...], values: dict, defs: dict) -> dict | None:
    """`schema` at `path`, restricted for decoding; None for an optional property the decoder leaves out (a
    nullable extension field or an open map whose keys the input does not name)."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    name = path[-1] if path else ""
    if "const" in schema or "enum" in schema:
        return {k: schema[k] for k in ("const", "enum") if k in schema}
    kind = schema.get("type")
    if isinstance(kind, list):
        return None  # ["object", "null"], ...: extension fields the teacher never writes
    if kind == "string":
        return _string(name, _id_values(path, values), schema.get("minLength", 0))
    if kind == "integer":
        low, high = BOUNDS["report"]["integer_range"].get(name, [None, None])
        bounds = {"minimum": schema.get("minimum", low), "maximum": schema.get("maximum", high)}
        return {"type": "integer", **{k: v for k, v in bounds.items() if v is not None}}
    if kind in ("number", "boolean"):
        return {k: v for k, v in schema.items() if k in ("type", "minimum", "maximum")}
    if kind == "array":
        item = _decode(schema.get("items", {"type": "string"}), path, values, defs)
        if item is None:
            return None
        sizes = BOUNDS["report"]["max_items"]
        most = len(values["own_ids"]) if name == "enriched_findings" else sizes.get(name, sizes["default"])
        if _unsatisfiable(item) or most == 0:
            return {"type": "array", "items": item, "maxItems": 0}
        out = {"type": "array", "items": item, "maxItems": max(most, schema.get("minItems", 0))}
        if schema.get("minItems"):
            out["minItems"] = schema["minItems"]
        return out
    if kind == "object":
        if name in BOUNDS["report"]["open_objects"]:
            schema = _shape(name)
        if "properties" not in schema:
            keys = values.get(_CONTEXT_MAPS.get(name, ""))
            value = schema.get("additionalProperties")
            if keys is None or not isinstance(value, dict):
                return None
            schema = {"type": "object", "properties": dict.fromkeys(keys, value)}
        props = {}
        for key in sorted(schema["properties"]):  # trained outputs are compact JSON with sorted keys
            if key in BOUNDS["report"]["omit"] and key not in schema.get("required", []):
                continue
            sub = _decode(schema["properties"][key], (*path, key), values, defs)
            if sub is None and key in schema.get("required", []):
                raise ValueError(f"enriched-output schema: required {'/'.join((*path, key))} has no decodable form")
            if sub is not None:
                props[key] = sub
        out = {"type": "object", "properties": props, "additionalProperties": False}
        required = {*schema.get("required", []), *BOUNDS["report"]["require"].get(name, [])}
        if required:
            out["required"] = [k for k in props if k in required]
        return out
    raise ValueError(f"enriched-output schema: {'/'.join(path) or '(root)'} has no type the decoder knows: {schema}")


def enriched_schema_for_part(part_report: dict) -> dict:
    """The decode-time JSON schema of the enriched report for `part_report` (a raw report or one part of it): see
    the module docstring. Self-contained (no $ref), no regex, every object closed, every string and list bounded."""
    source = _enriched_schema()
    defs = copy.deepcopy(source["$defs"])
    values = part_values(part_report)
    schema = _decode(source, (), values, defs)
    schema["title"] = "enriched report of one sys-scan report part (decode-time)"
    return schema


# --- tool calls -----------------------------------------------------------------------------------------------------


def scan_values(scan: dict | None, seen: list[str] | tuple[str, ...] = ()) -> dict[str, list]:
    """The values a tool argument may take on this scan: paths and pids the findings name (ids and metadata) or
    that the tool results in `seen` revealed (a parent pid, a file a package lookup named), finding ids, scanners
    and ATT&CK technique ids."""
    scan = scan or {}
    texts, pids = list(seen), []
    for _, f in _findings(scan):
        meta = f.get("metadata") or {}
        texts += [str(f.get("id", "")), *(str(v) for v in meta.values())]
        pids += [int(meta[k]) for k in ("pid", "ppid") if str(meta.get(k, "")).isdigit()]
        head, _, tail = str(f.get("id", "")).rpartition(":")
        if tail.isdigit() and head.startswith("/"):
            pids.append(int(tail))
    paths = []
    for text in texts:
        for path in _PATH.findall(text):
            paths += [path, path.removesuffix(" (deleted)")]
    for text in seen:
        pids += [int(p) for p in _PID.findall(text)]
    return {
        "paths": _unique(paths),
        "pids": _unique(pids),
        "finding_ids": _unique(str(f.get("id")) for _, f in _findings(scan)),
        "scanners": _unique(s for s, _ in _findings(scan)) or list(SCANNERS),
        "attack_techniques": sorted(TECHNIQUES),
    }


def _argument(name: str, schema: dict, values: dict[str, list]) -> dict | None:
    """One argument's schema for decoding; None when the scan holds no value it may take."""
    rule = BOUNDS["tools"]["arguments"].get(name)
    out = {k: v for k, v in schema.items() if k not in ("pattern", "format", "description")}
    if isinstance(rule, str):
        allowed = values[rule]
        if "enum" in schema:
            allowed = [v for v in allowed if v in schema["enum"]]
        return {"enum": allowed} if allowed else None
    if out.get("type") == "string" and "enum" not in out:
        out["maxLength"] = min(
            out.get("maxLength", 1 << 30), (rule or {}).get("max_length", BOUNDS["tools"]["max_length"])
        )
        if rule and "min_length" in rule:
            out["minLength"] = rule["min_length"]
        if rule and "pattern" in rule:
            out["pattern"] = rule["pattern"]
    return out


def tool_call_schema(
    tools: list[dict], scan: dict | None, fmt: ToolCallFormat | None = None, seen: list[str] | tuple[str, ...] = ()
) -> dict:
    """The JSON schema of one tool call: one of the declared `tools` (OpenAI-style declarations) with arguments
    under its schema, a path or pid argument limited to what `scan` holds or the tool results in `seen` named.
    Keys as `fmt` writes them (`arguments`, or Llama 3.1's `parameters`; an `id` where the format carries call
    ids). A tool that cannot be called on this scan (a required path and no path in it) is left out."""
    values = scan_values(scan, seen)
    args_key = fmt.args_key if fmt else "arguments"
    choices = []
    for tool in tools:
        fn = tool["function"]
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        required = list(params.get("required", []))
        props = {}
        for key, sub in params.get("properties", {}).items():
            decoded = _argument(key, sub, values)
            if decoded is not None:
                props[key] = decoded
        if any(k not in props for k in required):
            continue
        arguments = {"type": "object", "properties": props, "additionalProperties": False}
        if required:
            arguments["required"] = required
        call = {"name": {"const": fn["name"]}, args_key: arguments}
        if fmt is not None and fmt.native_ids:
            call["id"] = {"type": "string", "minLength": 9, "maxLength": 9}
        choices.append({"type": "object", "properties": call, "required": list(call), "additionalProperties": False})
    if not choices:
        raise ValueError("no declared tool can be called on this scan (each needs a value the scan does not hold)")
    return {"anyOf": choices} if len(choices) > 1 else choices[0]


def tool_turn_constraint(
    tools: list[dict],
    scan: dict | None,
    fmt: ToolCallFormat,
    messages: list[dict] = (),
    tool_choice: str = "auto",
) -> Constraint:
    """One assistant turn of the tool loop after `messages`: calls in `fmt` (see `tool_call_schema`; the user's
    question and the tool results so far may name further paths and pids), or a plain-text answer; `tool_choice`
    (OpenAI's names) "required" takes the answer away, "none" the calls."""
    if tool_choice not in TOOL_CHOICES:
        raise ValueError(f"tool_choice {tool_choice!r}: one of {', '.join(TOOL_CHOICES)}")
    seen = [str(m.get("content") or "") for m in messages if m.get("role") in ("user", "tool")]
    schema = tool_call_schema(tools, scan, fmt, seen)
    bounds = BOUNDS["tools"]
    return Constraint(schema, fmt, bounds["calls_per_turn"], tool_choice=tool_choice, lead_chars=bounds["lead_chars"])


def stops_when_looping(constraint: Constraint | None) -> bool:
    """Whether an answer under `constraint` that falls into a repetition cycle may be ended there (`use/loops.py`
    `is_looping`): a free answer, or a plain-text-only one (any prefix of it is valid); never a JSON or call turn,
    which a cut would leave invalid. Both runtimes ask this."""
    return constraint is None or constraint.text_only


# What a turn's tool_choice may be where a constraint is built: "auto" (call or answer), "required" (call), "none"
# (answer).
TOOL_CHOICES = ("auto", "required", "none")


def report_constraint(part_report: dict) -> Constraint:
    """The specialist's answer to `part_report`: one enriched report under `enriched_schema_for_part`."""
    return Constraint(enriched_schema_for_part(part_report))
