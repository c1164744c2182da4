"""Knowledge kept as data files a security reviewer can edit (YAML next to the stage that owns it), loaded into
the Python values the code reads.

Each loader names the JSON schema its file must follow; an edit that breaks the shape stops the import with one
line naming the file and the key, instead of a traceback deep inside a scanner or a rule.
"""

from __future__ import annotations

from importlib.resources import files

import jsonschema
import yaml

# Every file loaded so far -> its schema, so the tests can check that no data file goes unvalidated.
SCHEMAS: dict[str, dict] = {}


class KnowledgeFileError(ValueError):
    """A data file that does not parse or does not have the shape its loader expects."""


def data_path(package: str, name: str) -> str:
    """The file's path inside the package, as errors and `SCHEMAS` name it."""
    return f"{package.replace('.', '/')}/{name}"


def load_table(package: str, name: str, schema: dict) -> dict:
    """The mapping in `package`/`name`, checked against `schema`; lists stay lists (see `frozen`).

    Each loader module calls this once, at import: the tables are module constants."""
    where = data_path(package, name)
    SCHEMAS[where] = schema
    return parse(files(package).joinpath(name).read_text(encoding="utf-8"), where, schema)


def parse(text: str, where: str, schema: dict) -> dict:
    """The YAML `text` checked against `schema`; `where` names the file in the one-line error."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise KnowledgeFileError(f"{where}:{line} not valid YAML: {problem}") from None
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
    if error is not None:
        key = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        message = " ".join(error.message.split())
        if len(message) > 200:
            message = message[:200] + "..."
        raise KnowledgeFileError(f"{where}: key {key}: {message}")
    return value


def frozen(value):
    """Lists become tuples, at any depth (the tables are immutable constants); mappings stay dicts."""
    if isinstance(value, list):
        return tuple(frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: frozen(v) for k, v in value.items()}
    return value


# -- schema shorthands (JSON schema, kept short so a loader's expected shape reads at a glance) ---------

STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}


def seq(item: dict, length: int | None = None) -> dict:
    """A list of `item`s, of exactly `length` when given (a row of a table)."""
    schema = {"type": "array", "items": item}
    if length is not None:
        schema.update(minItems=length, maxItems=length)
    return schema


def row(*items: dict) -> dict:
    """A fixed-length list whose positions have the given types (a tuple)."""
    return {"type": "array", "prefixItems": list(items), "minItems": len(items), "maxItems": len(items)}


def mapping(value: dict) -> dict:
    """A dict from names to `value`s."""
    return {"type": "object", "additionalProperties": value}


def record(required: dict, optional: dict | None = None) -> dict:
    """A dict with exactly these fields: `required` ones must be there, `optional` ones may."""
    props = dict(required, **(optional or {}))
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}
