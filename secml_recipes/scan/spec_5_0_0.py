"""Everything sys-scan 5.0.0 can write, as data: report keys, and for each scanner the finding forms (id,
title, severities, description, metadata keys and their value forms), read from the source at a2ceff7.

This is the yardstick of `fidelity.py`, written apart from the generator so that it checks the generator
rather than repeating it, and applied to the real fixture too (which must show no defect). A form's
`title` and `description` are templates: `{name}` is a group of the id pattern or a metadata key; the rest
is literal. Value forms are regular expressions matched against the whole value. The forms live in
`spec/5_0_0_forms.yaml` (a reviewer edits them there); this module loads them into `FORMS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from secml_recipes.knowledge_files import INT, STR, KnowledgeFileError, data_path, load_table, mapping, record, seq

# The spec's own transcription of the C++ source (spec/5_0_0.yaml), never the generator's tables: a check that
# shared its knowledge with what it checks could not fail. tests/test_knowledge_files.py compares the two.
_SYSCTL_CHECK = record(dict.fromkeys(("path", "id", "title", "expect", "sev", "bad_desc", "good_desc"), STR))
_SOURCE = load_table(
    __package__, "spec/5_0_0.yaml", record({"severity_score": mapping(INT), "hardening_sysctls": seq(_SYSCTL_CHECK)})
)
SEVERITY_SCORE: dict[str, int] = _SOURCE["severity_score"]
# (path, id without "sysctl:", title, expected, severity, bad description, good description), as v5_0_0 spells them
HARDENING_SYSCTLS: tuple[tuple[str, ...], ...] = tuple(
    (c["path"], c["id"].removeprefix("sysctl:"), c["title"], c["expect"], c["sev"], c["bad_desc"], c["good_desc"])
    for c in _SOURCE["hardening_sysctls"]
)

TOP_KEYS = {"meta", "summary", "results", "collection_warnings", "scanner_errors", "summary_extension"}
OPTIONAL_TOP_KEYS = {"compliance_summary", "partial_warnings"}
META_KEYS = {
    "$schema",
    "arch",
    "cmdline",
    "effective_config",
    "egid",
    "euid",
    "gid",
    "hostname",
    "json_schema_version",
    "kernel",
    "os_id",
    "os_pretty",
    "os_version",
    "provenance",
    "tool_version",
    "uid",
    "user",
}
OPTIONAL_META_KEYS = {"normalized_time", "timings"}
PROVENANCE_KEYS = {
    "build_type",
    "compiler_id",
    "compiler_version",
    "cxx_flags",
    "cxx_standard",
    "git_commit",
    "slsa_level",
}
EFFECTIVE_CONFIG_KEYS = {
    "canonical",
    "compact",
    "compliance",
    "containers",
    "fs_hygiene",
    "fs_world_writable_limit",
    "hardening",
    "integrity",
    "integrity_pkg_rehash",
    "integrity_pkg_rehash_limit",
    "integrity_pkg_verify",
    "ioc_env_trust",
    "ioc_exec_trace",
    "ioc_exec_trace_seconds",
    "modules_anomalies_only",
    "modules_hash",
    "modules_summary_only",
    "ndjson",
    "parallel",
    "parallel_max_threads",
    "pretty",
    "process_inventory",
    "rules_enable",
    "sarif",
    "seccomp",
    "seccomp_strict",
}
OPTIONAL_EFFECTIVE_CONFIG_KEYS = {"min_severity", "fail_on_severity"}
SUMMARY_KEYS = {
    "duration_ms",
    "finding_count_emitted",
    "finding_count_total",
    "findings_per_second",
    "finished_at",
    "scanner_count",
    "scanners_with_findings",
    "severity_counts",
    "severity_counts_emitted",
    "slowest_scanner",
    "started_at",
}
RESULT_KEYS = {"elapsed_ms", "end_time", "finding_count", "findings", "scanner", "start_time"}
FINDING_KEYS = {"base_severity_score", "description", "id", "metadata", "severity", "title"}
SCANNERS = (
    "processes",
    "network",
    "kernel_params",
    "modules",
    "world_writable",
    "suid_sgid",
    "ioc",
    "mac",
    "mounts",
    "kernel_hardening",
    "systemd_units",
    "auditd",
    "containers",
    "integrity",
    "yara",
    "ebpf_exec_trace",
    "pci_compliance",
)
# collection_warnings: (scanner, code, detail pattern)
WARNINGS = (
    ("processes", "proc_unreadable_cmdline", r"/proc/\d+/cmdline"),
    ("processes", "proc_unreadable_status", r"/proc/\d+/status"),
    ("processes", "proc_exe_symlink_unreadable", r"/proc/\d+/exe"),
    ("kernel_params", "param_unreadable", r"/proc/sys/\S+"),
    ("modules", "decompress_fail", r"\S+\.ko\.(xz|gz)"),
    ("mounts", "mounts_unreadable", r"/proc/mounts"),
    (
        r"tcp6?|udp6?",
        "net_file_unreadable",
        r"/proc/net/(tcp|udp)6?|(TCP|UDP) socket scan truncated at \d+ sockets "
        r"\(max_sockets limit\)",
    ),
)


@dataclass(frozen=True)
class Form:
    name: str
    id: str
    title: str
    severities: tuple[str, ...]
    descriptions: tuple[str, ...]
    values: dict = field(default_factory=dict)  # metadata key -> value pattern
    required: tuple[str, ...] = ()


# The finding forms (spec/5_0_0_forms.yaml, its header explains the fields and the little vocabulary expanded
# here: named patterns, {{NAME}}, and families of forms filled from rows with {{field}}, {{field|re}}, {{field|leaf}}).
_FORMS_FILE = "spec/5_0_0_forms.yaml"
_FORM = record(
    {"name": STR, "id": STR, "title": STR, "severities": seq(STR), "descriptions": seq(STR)},
    {"metadata": mapping(STR), "required": seq(STR)},
)
_FAMILY = record({"each": {"anyOf": [STR, seq(mapping(STR))]}, "form": _FORM})
_FORMS_DATA = load_table(
    __package__,
    _FORMS_FILE,
    record(
        {
            "patterns": {**mapping(STR), "propertyNames": {"pattern": "^[A-Z][A-Z0-9_]*$"}},
            "any_scanner": _FORM,
            "rule_keys": mapping(STR),
            "forms": mapping(seq({"anyOf": [_FORM, _FAMILY]})),
        }
    ),
)
PATTERNS: dict[str, str] = _FORMS_DATA["patterns"]
ANY1 = PATTERNS["ANY1"]  # a description that is any text (not a template)
_PLACEHOLDER = re.compile(r"\{\{(\w+)(?:\|(\w+))?\}\}")
_FILTERS = {None: str, "re": re.escape, "leaf": lambda text: text.rsplit("/", 1)[-1]}


def _error(key: str, message: str) -> KnowledgeFileError:
    return KnowledgeFileError(f"{data_path(__package__, _FORMS_FILE)}: key {key}: {message}")


def _fill(text: str, row: dict, key: str) -> str:
    """`text` with each {{field}} / {{field|filter}} from the family's row and each {{NAME}} from `patterns`."""

    def one(m: re.Match) -> str:
        name, how = m.groups()
        if name not in row and name not in PATTERNS:
            raise _error(key, f"no row field or pattern named {name!r} in {text!r}")
        if how not in _FILTERS:
            raise _error(key, f"unknown filter {how!r} in {text!r} (re, leaf)")
        return _FILTERS[how](row[name] if name in row else PATTERNS[name])

    return _PLACEHOLDER.sub(one, text)


def _value(text: str, row: dict, key: str) -> str:
    """A metadata value or description: a pattern's name stands for the pattern; anything else is filled."""
    return PATTERNS[text] if text in PATTERNS else _fill(text, row, key)


def _compiled(pattern: str, key: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise _error(key, f"not a regular expression: {exc}") from None
    return pattern


def _form(spec: dict, row: dict, key: str) -> Form:
    values = {k: _compiled(_value(v, row, f"{key}/metadata/{k}"), f"{key}/metadata/{k}")
              for k, v in spec.get("metadata", {}).items()}  # fmt: skip
    severities = tuple(_fill(s, row, f"{key}/severities") for s in spec["severities"])
    unknown = [s for s in severities if s not in SEVERITY_SCORE]
    if unknown:
        raise _error(f"{key}/severities", f"{unknown} not among spec/5_0_0.yaml's severity_score")
    required = tuple(spec.get("required", ()))
    if not set(required) <= set(values):
        raise _error(f"{key}/required", f"{sorted(set(required) - set(values))} have no metadata pattern")
    return Form(
        _fill(spec["name"], row, f"{key}/name"),
        _compiled(_fill(spec["id"], row, f"{key}/id"), f"{key}/id"),
        _fill(spec["title"], row, f"{key}/title"),
        severities,
        tuple(_value(d, row, f"{key}/descriptions") for d in spec["descriptions"]),
        values,
        required,
    )


def _forms(scanner: str, items: list) -> tuple[Form, ...]:
    out = []
    for i, item in enumerate(items):
        key = f"forms/{scanner}/{i}"
        if "form" not in item:
            out.append(_form(item, {}, key))
            continue
        rows = item["each"]
        if isinstance(rows, str):  # a table of spec/5_0_0.yaml
            if not isinstance(_SOURCE.get(rows), list):
                raise _error(f"{key}/each", f"spec/5_0_0.yaml has no table of rows named {rows!r}")
            rows = _SOURCE[rows]
        out += [_form(item["form"], row, f"{key}/form") for row in rows]
    return tuple(out)


FORMS: dict[str, tuple[Form, ...]] = {
    scanner: _forms(scanner, items) for scanner, items in _FORMS_DATA["forms"].items()
}
# Any scanner: an exception becomes "<scanner>:error" (ScannerRegistry::run_all_*)
ERROR_FORM = _form(_FORMS_DATA["any_scanner"], {}, "any_scanner")
# With --rules-enable a rule may override any severity and add these keys to any finding.
RULE_KEYS: dict[str, str] = _FORMS_DATA["rule_keys"]


def _template_regex(template: str, groups: dict, metadata: dict, literal: bool) -> str:
    """A template's `{name}` filled from the id's groups or the metadata; the rest literal (or, for titles
    and descriptions given as patterns, left as a pattern)."""
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)\}", template):
        text = template[pos : m.start()]
        out.append(re.escape(text) if literal else text)
        value = groups.get(m.group(1), metadata.get(m.group(1)))
        out.append(re.escape(value) if value is not None else ".+")
        pos = m.end()
    tail = template[pos:]
    out.append(re.escape(tail) if literal else tail)
    return "".join(out)


def match_form(scanner: str, f: dict) -> Form | None:
    """The form of `scanner` whose id and title match finding `f`, else None."""
    forms = FORMS.get(scanner, ()) + (ERROR_FORM,)
    fid, title, meta = str(f.get("id", "")), str(f.get("title", "")), f.get("metadata") or {}
    for form in forms:
        m = re.fullmatch(form.id, fid)
        if not m:
            continue
        literal = not any(ch in form.title for ch in "\\|")
        if re.fullmatch(_template_regex(form.title, m.groupdict(), meta, literal), title):
            return form
    return None


def finding_defects(scanner: str, f: dict, rules: bool = False) -> list[str]:
    """Why finding `f` of `scanner` is not something 5.0.0 writes (empty when it is)."""
    if scanner not in SCANNERS:
        return [f"scanner '{scanner}' is not registered by 5.0.0"]
    form = match_form(scanner, f)
    if form is None:
        return [f"{scanner}: id/title form never emitted: id={f.get('id')!r} title={f.get('title')!r}"]
    out = []
    keys = set(f) - {"risk_score"}
    if keys != FINDING_KEYS:
        out.append(f"{scanner}/{form.name}: finding keys {sorted(keys ^ FINDING_KEYS)} differ from 5.0.0's")
    sev = f.get("severity")
    if sev not in form.severities and not rules:
        out.append(f"{scanner}/{form.name}: severity {sev!r} never given (source: {'/'.join(form.severities)})")
    expected_score = str(SEVERITY_SCORE[sev]) if sev in SEVERITY_SCORE else None  # the scanner writes a string
    if expected_score != f.get("base_severity_score"):
        out.append(
            f"{scanner}/{form.name}: base_severity_score {f.get('base_severity_score')!r} is not "
            f"{expected_score!r} for severity {sev!r}"
        )
    m = re.fullmatch(form.id, str(f.get("id")))
    meta = f.get("metadata") or {}
    if form is not ERROR_FORM and not any(
        re.fullmatch(_template_regex(d, m.groupdict(), meta, literal=d != ANY1), str(f.get("description", "")))
        for d in form.descriptions
    ):
        out.append(f"{scanner}/{form.name}: description form never emitted: {str(f.get('description'))[:80]!r}")
    allowed = dict(form.values, **(RULE_KEYS if rules else {}))
    for key, value in meta.items():
        if key not in allowed:
            out.append(f"{scanner}/{form.name}: metadata key '{key}' never written by 5.0.0")
        elif not isinstance(value, str) or not re.fullmatch(allowed[key], value):
            out.append(f"{scanner}/{form.name}: metadata '{key}' value form never written: {str(value)[:60]!r}")
    for key in form.required:
        if key not in meta:
            out.append(f"{scanner}/{form.name}: metadata '{key}' missing (always written by 5.0.0)")
    return out


def report_defects(report: dict) -> list[str]:
    """Every key, form and order in `report` that sys-scan 5.0.0 never writes."""
    out = []
    keys = set(report)
    if not keys >= TOP_KEYS or keys - TOP_KEYS - OPTIONAL_TOP_KEYS:
        out.append(f"top-level keys {sorted(keys ^ TOP_KEYS)} differ from 5.0.0's")
    meta = report.get("meta", {})
    extra = set(meta) - META_KEYS - OPTIONAL_META_KEYS
    if extra:
        out.append(f"meta keys never written: {sorted(extra)}")
    ec = meta.get("effective_config", {})
    extra = set(ec) - EFFECTIVE_CONFIG_KEYS - OPTIONAL_EFFECTIVE_CONFIG_KEYS
    if extra or not set(ec) >= EFFECTIVE_CONFIG_KEYS:
        out.append(f"effective_config keys differ: {sorted(set(ec) ^ EFFECTIVE_CONFIG_KEYS)}")
    if set(meta.get("provenance", {})) != PROVENANCE_KEYS:
        out.append(f"provenance keys differ: {sorted(set(meta.get('provenance', {})) ^ PROVENANCE_KEYS)}")
    if set(report.get("summary", {})) != SUMMARY_KEYS:
        out.append(f"summary keys differ: {sorted(set(report.get('summary', {})) ^ SUMMARY_KEYS)}")
    canonical = ec.get("canonical") == "true"
    rules = ec.get("rules_enable") == "true"
    for result in report.get("results", []):
        scanner = result.get("scanner")
        if set(result) != RESULT_KEYS:
            out.append(f"{scanner}: result keys {sorted(set(result) ^ RESULT_KEYS)} differ from 5.0.0's")
        ids = [str(f.get("id")) for f in result.get("findings", [])]
        if canonical and ids != sorted(ids):
            out.append(f"{scanner}: findings not sorted by id under --canonical")
        for f in result.get("findings", []):
            out += finding_defects(scanner, f, rules)
    for w in report.get("collection_warnings", []):
        if not any(
            re.fullmatch(s, str(w.get("scanner")))
            and code == w.get("code")
            and re.fullmatch(d, str(w.get("detail", "")))
            for s, code, d in WARNINGS
        ):
            out.append(f"collection warning form never written: {w}")
    return out
