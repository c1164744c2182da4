"""Validation of raw reports, enriched reports and dataset rows. Each check returns a reason, never crashes."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

import jsonschema

from secml_recipes.scan.fixtures import schema_v2

SCHEMA_DIR = Path(__file__).with_name("schemas")


@lru_cache(maxsize=1)
def _raw_validator() -> jsonschema.protocols.Validator:
    """schema-v2 with `risk_score` optional (the real scanner emits `base_severity_score` instead) and the two
    top-level keys its writer adds that the schema file omits (`compliance_summary` under --compliance,
    `partial_warnings`)."""
    schema = copy.deepcopy(schema_v2())
    item = schema["properties"]["results"]["items"]["properties"]["findings"]["items"]
    item["required"] = [k for k in item["required"] if k != "risk_score"]
    schema["properties"]["compliance_summary"] = {"type": "object"}
    schema["properties"]["partial_warnings"] = {"type": "array"}
    return jsonschema.Draft202012Validator(schema)


@lru_cache(maxsize=1)
def _enriched_validator() -> jsonschema.protocols.Validator:
    """sys-scan-agent's EnrichedOutput, the subset the teacher writes (schemas/enriched-output.schema.json)."""
    schema = json.loads((SCHEMA_DIR / "enriched-output.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def _first_error(validator, obj) -> str | None:
    error = next(iter(sorted(validator.iter_errors(obj), key=lambda e: list(e.path))), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.path) or "(root)"
    return f"{where}: {error.message}"


def raw_report_error(report) -> str | None:
    """Why `report` is not a sys-scan v2 report (risk_score optional), or None. Older reports without
    `json_schema_version` are refused with that reason."""
    if not isinstance(report, dict):
        return f"a report is a JSON object, got {type(report).__name__}"
    meta = report.get("meta")
    if isinstance(meta, dict) and "json_schema_version" not in meta:
        return (
            "meta.json_schema_version is missing: this looks like a sys-scan report older than schema v2; "
            "re-run a sys-scan >= 2.0 with --canonical"
        )
    if isinstance(meta, dict) and meta.get("json_schema_version") != "2":
        return f"meta.json_schema_version is {meta.get('json_schema_version')!r}; only '2' is supported"
    return _first_error(_raw_validator(), report)


OLD_FORMAT = (
    "this is the old secml enriched format (enrichment_version 1), not sys-scan-agent's EnrichedOutput: "
    "rebuild the corpus with `make data`"
)


def enriched_report_error(enriched) -> str | None:
    """Why `enriched` is not an EnrichedOutput in the teacher's format, or None."""
    if isinstance(enriched, dict) and "enrichment_version" in enriched:
        return OLD_FORMAT
    return _first_error(_enriched_validator(), enriched)


# --- strict JSON and row shapes: every check returns a reason whatever the row holds -------------------------------

MAX_DEPTH = 64  # the deepest real row (an enriched report inside a message) is about 10 levels


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON (non-finite numbers are refused)")


def strict_json_loads(text: str | bytes):
    """json.loads without Python's extensions: NaN, Infinity and -Infinity are refused (ValueError), as is nesting
    deep enough to exhaust the parser (RecursionError becomes ValueError)."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nested too deeply to parse") from None


def json_error(text) -> tuple[object, str | None]:
    """(value, None) for strict JSON, else (None, the reason)."""
    try:
        return strict_json_loads(text), None
    except (TypeError, ValueError) as err:  # JSONDecodeError is a ValueError
        return None, str(err)


def depth_error(value, limit: int = MAX_DEPTH) -> str | None:
    """Why `value` nests deeper than `limit` containers, or None (iterative: no recursion limit to hit)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return f"nested more than {limit} levels deep"
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return None


def _message_error(m, where: str, roles: tuple[str, ...]) -> str | None:
    if not isinstance(m, dict):
        return f"{where}: a message is a JSON object, got {type(m).__name__}"
    if m.get("role") not in roles:
        return f"{where}: role must be one of {list(roles)}, got {m.get('role')!r}"
    content = m.get("content")
    if not (isinstance(content, str) or (content is None and m.get("role") == "assistant" and m.get("tool_calls"))):
        return f"{where}: content must be a string, got {type(content).__name__}"
    return None


def _checked(check):
    """A row check that returns a reason for any shape: depth first, and an unforeseen error becomes a reason."""

    def run(row) -> str | None:
        problem = depth_error(row)
        if problem:
            return problem
        try:
            return check(row)
        except Exception as err:  # a shape no rule foresaw: quarantined with the reason, never a crash
            return f"row could not be checked ({type(err).__name__}: {err})"

    run.__name__, run.__doc__ = check.__name__, check.__doc__
    return run


@_checked
def specialist_row_error(row) -> str | None:
    """Why a specialist row cannot be trained on, or None."""
    if not isinstance(row, dict):
        return "row is not a JSON object"
    for key in ("id", "host_id", "prompt", "completion"):
        if key not in row:
            return f"missing key '{key}'"
    prompt, completion = row["prompt"], row["completion"]
    if not (isinstance(prompt, list) and prompt and all(isinstance(m, dict) for m in prompt)):
        return "prompt must be a non-empty list of messages"
    if [m.get("role") for m in prompt] not in (["system", "user"], ["user"]):
        return "prompt roles must be [system, user] or [user]"
    for i, m in enumerate(prompt):
        problem = _message_error(m, f"prompt[{i}]", ("system", "user"))
        if problem:
            return problem
    if not (isinstance(completion, list) and len(completion) == 1):
        return "completion must be exactly one assistant message"
    problem = _message_error(completion[0], "completion[0]", ("assistant",))
    if problem:
        return problem
    report, problem = json_error(prompt[-1]["content"])
    if problem:
        return f"prompt user content is not JSON: {problem}"
    problem = raw_report_error(report)
    if problem:
        return f"prompt report invalid: {problem}"
    enriched, problem = json_error(completion[0]["content"])
    if problem:
        return f"completion is not JSON: {problem}"
    problem = enriched_report_error(enriched)
    return f"completion invalid: {problem}" if problem else None


# What a chat template and TRL need of a tool: the OpenAI function-tool shape.
TOOL_SCHEMA = {
    "type": "object",
    "required": ["type", "function"],
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name", "parameters"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "description": {"type": "string"},
                "parameters": {"type": "object"},
            },
        },
    },
}


def tools_error(tools) -> tuple[dict, str | None]:
    """({name: parameters schema}, None) for a usable tools list, else ({}, the reason)."""
    if not isinstance(tools, list):
        return {}, f"tools must be a list of function tools, got {type(tools).__name__}"
    declared = {}
    for i, tool in enumerate(tools):
        problem = _first_error(jsonschema.Draft202012Validator(TOOL_SCHEMA), tool)
        if problem:
            return {}, f"tools[{i}]: {problem}"
        fn = tool["function"]
        try:
            jsonschema.Draft202012Validator.check_schema(fn["parameters"])
        except jsonschema.SchemaError as err:
            return {}, f"tools[{i}] ({fn['name']}): parameters is not a JSON schema: {err.message}"
        if fn["name"] in declared:
            return {}, f"tools[{i}]: tool {fn['name']!r} is declared twice"
        declared[fn["name"]] = fn["parameters"]
    return declared, None


def _tool_call_error(tc, where: str, declared: dict) -> str | None:
    if not isinstance(tc, dict) or not isinstance(tc.get("function"), dict):
        return f"{where}: a tool call is an object with a 'function' object"
    fn = tc["function"]
    name = fn.get("name")
    if not isinstance(name, str) or name not in declared:
        return f"{where}: call to undeclared tool {name!r}"
    if not isinstance(tc.get("id"), str):
        return f"{where}: a tool call needs a string id"
    args = fn.get("arguments")
    if isinstance(args, str):
        args, problem = json_error(args)
        if problem:
            return f"{where}: arguments of {name} are not JSON: {problem}"
    if not isinstance(args, dict):
        return f"{where}: arguments of {name} must be a JSON object"
    try:
        jsonschema.validate(args, declared[name])
    except jsonschema.ValidationError as err:
        return f"{where}: bad arguments for {name}: {err.message}"
    return None


@_checked
def generalist_row_error(row) -> str | None:
    """Why a generalist row cannot be trained on, or None: message shapes and roles, the tools' schema, declared
    tools, argument schemas and that every tool result answers a call made before it."""
    if not isinstance(row, dict):
        return "row is not a JSON object"
    for key in ("id", "host_id", "messages", "tools"):
        if key not in row:
            return f"missing key '{key}'"
    tools = row["tools"]
    if isinstance(tools, str):
        tools, problem = json_error(tools)
        if problem:
            return f"tools is not JSON: {problem}"
    declared, problem = tools_error(tools)
    if problem:
        return problem
    messages = row["messages"]
    if not isinstance(messages, list) or len(messages) < 2:
        return "messages must be a list of at least two messages"
    open_calls: set[str] = set()
    saw_assistant = False
    for i, m in enumerate(messages):
        problem = _message_error(m, f"messages[{i}]", ("system", "user", "assistant", "tool"))
        if problem:
            return problem
        role = m["role"]
        if role == "system" and i != 0:
            return f"messages[{i}]: system message must come first"
        if role == "assistant":
            saw_assistant = True
            calls = m.get("tool_calls") or []
            if not isinstance(calls, list):
                return f"messages[{i}]: tool_calls must be a list"
            for j, tc in enumerate(calls):
                problem = _tool_call_error(tc, f"messages[{i}].tool_calls[{j}]", declared)
                if problem:
                    return problem
                open_calls.add(tc["id"])
        if role == "tool":
            if m.get("tool_call_id") not in open_calls:
                return f"messages[{i}]: tool result for unknown call id {m.get('tool_call_id')!r}"
            open_calls.discard(m.get("tool_call_id"))
    if not saw_assistant or messages[-1]["role"] != "assistant":
        return "an episode must end with an assistant message"
    return None


ROW_CHECKS = {"specialist": specialist_row_error, "generalist": generalist_row_error}
