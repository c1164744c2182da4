"""Validation of raw reports, enriched reports and dataset rows. Each check returns a reason, never crashes."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

import jsonschema

from .fixtures import schema_v2

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
        return ("meta.json_schema_version is missing: this looks like a sys-scan report older than schema v2; "
                "re-run a sys-scan >= 2.0 with --canonical")
    if isinstance(meta, dict) and meta.get("json_schema_version") != "2":
        return f"meta.json_schema_version is {meta.get('json_schema_version')!r}; only '2' is supported"
    return _first_error(_raw_validator(), report)


OLD_FORMAT = ("this is the old secml enriched format (enrichment_version 1), not sys-scan-agent's EnrichedOutput: "
              "rebuild the corpus with `make data`")


def enriched_report_error(enriched) -> str | None:
    """Why `enriched` is not an EnrichedOutput in the teacher's format, or None."""
    if isinstance(enriched, dict) and "enrichment_version" in enriched:
        return OLD_FORMAT
    return _first_error(_enriched_validator(), enriched)


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
    if not (isinstance(completion, list) and len(completion) == 1 and completion[0].get("role") == "assistant"):
        return "completion must be exactly one assistant message"
    try:
        report = json.loads(prompt[-1]["content"])
    except (TypeError, json.JSONDecodeError) as err:
        return f"prompt user content is not JSON: {err}"
    problem = raw_report_error(report)
    if problem:
        return f"prompt report invalid: {problem}"
    try:
        enriched = json.loads(completion[0]["content"])
    except (TypeError, json.JSONDecodeError) as err:
        return f"completion is not JSON: {err}"
    problem = enriched_report_error(enriched)
    return f"completion invalid: {problem}" if problem else None


def generalist_row_error(row) -> str | None:
    """Why a generalist row cannot be trained on, or None: roles, declared tools, argument schemas and
    that every tool result answers a call made before it."""
    if not isinstance(row, dict):
        return "row is not a JSON object"
    for key in ("id", "host_id", "messages", "tools"):
        if key not in row:
            return f"missing key '{key}'"
    try:
        tools = json.loads(row["tools"]) if isinstance(row["tools"], str) else row["tools"]
    except json.JSONDecodeError as err:
        return f"tools is not JSON: {err}"
    declared = {t["function"]["name"]: t["function"]["parameters"] for t in tools if "function" in t}
    messages = row["messages"]
    if not isinstance(messages, list) or len(messages) < 2:
        return "messages must be a list of at least two messages"
    open_calls: set[str] = set()
    saw_assistant = False
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("system", "user", "assistant", "tool"):
            return f"messages[{i}]: unknown role {role!r}"
        if role == "system" and i != 0:
            return f"messages[{i}]: system message must come first"
        if role == "assistant":
            saw_assistant = True
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function", {})
                name = fn.get("name")
                if name not in declared:
                    return f"messages[{i}]: call to undeclared tool {name!r}"
                args = fn.get("arguments")
                try:
                    args = json.loads(args) if isinstance(args, str) else args
                    jsonschema.validate(args, declared[name])
                except (json.JSONDecodeError, jsonschema.ValidationError) as err:
                    return f"messages[{i}]: bad arguments for {name}: {getattr(err, 'message', err)}"
                open_calls.add(tc.get("id"))
        if role == "tool":
            if m.get("tool_call_id") not in open_calls:
                return f"messages[{i}]: tool result for unknown call id {m.get('tool_call_id')!r}"
            open_calls.discard(m.get("tool_call_id"))
    if not saw_assistant or messages[-1].get("role") != "assistant":
        return "an episode must end with an assistant message"
    return None


ROW_CHECKS = {"specialist": specialist_row_error, "generalist": generalist_row_error}
