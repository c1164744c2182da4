"""Flat YAML recipes mapped onto dataclasses, TRL style.

A recipe file holds data keys (`DataArguments`), model keys (TRL's `ModelConfig`), every `SFTConfig`
key and the speed keys (`speed.SpeedArguments`) side by side. `--key value` on the command line wins over
the file. Every key and value is checked here, before anything heavy is imported or loaded, so a typo
costs a second, not a model download.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class RecipeError(ValueError):
    """A recipe or an override is wrong; the message names the file, the key and what would be right."""


@dataclass
class DataArguments:
    """Where the examples come from and how batches are shaped."""

    task: str = field(
        default="specialist",
        metadata={"help": "specialist (raw report -> enriched report) or generalist (agentic tool episodes)",
                  "choices": ["specialist", "generalist"]},
    )
    dataset_path: str = field(
        default="data/massive_datasets.tar.gz",
        metadata={"help": "massive_datasets.tar.gz, its extracted directory, or a directory of JSONL shards"},
    )
    train_split: str = field(default="train", metadata={"help": "split used for training"})
    eval_split: str | None = field(default="eval", metadata={"help": "split used for evaluation; null for none"})
    max_train_samples: int | None = field(default=None, metadata={"help": "keep the first N training rows"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "keep the first N evaluation rows"})
    rejects_dir: str | None = field(
        default=None, metadata={"help": "where rows that fail validation are written (default: <output_dir>/rejects)"}
    )
    xla_bucket_lengths: list[int] | None = field(
        default=None,
        metadata={"help": "fixed padded lengths on XLA (default: xla_bucket_count lengths planned from the "
                          "training data's token lengths)"},
    )
    xla_bucket_count: int = field(
        default=4, metadata={"help": "how many bucket lengths to plan on XLA (= compiled step graphs)"}
    )
    loss_plot: bool = field(default=True, metadata={"help": "write loss.png beside the trained model"})
    dataset_mixture: list[dict] | None = field(
        default=None,
        metadata={"help": "several corpora by weight instead of dataset_path: a list of {path, weight}; a weight "
                          "multiplies that source's training rows (0.5 a seeded half, 3 three copies); "
                          "see docs/scan-data.md"},
    )

    def __post_init__(self):
        if self.dataset_mixture is not None:
            from .data.mixture import parse_mixture

            parse_mixture(self.dataset_mixture)


_FORBIDDEN_KEYS = {
    "hub_token": "put the token in the HF_TOKEN environment variable instead; recipes are saved beside models",
    "push_to_hub_token": "put the token in the HF_TOKEN environment variable instead",
}


def recipe_dataclasses() -> tuple[type, ...]:
    """The dataclasses a recipe fills, in the order `load_recipe` returns them."""
    from trl import ModelConfig, SFTConfig

    from .speed import SpeedArguments

    return (DataArguments, ModelConfig, SFTConfig, SpeedArguments)


def _field_index(classes: tuple[type, ...]) -> dict[str, tuple[type, dataclasses.Field]]:
    index: dict[str, tuple[type, dataclasses.Field]] = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            if f.init and f.name not in index:
                index[f.name] = (cls, f)
    return index


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"true", "1", "yes", "on"}:
        return True
    if lowered in {"false", "0", "no", "off"}:
        return False
    raise ValueError(text)


def coerce_value(value: Any, tp: Any, from_cli: bool) -> Any:
    """Return `value` converted to `tp`, or raise ValueError. CLI values arrive as strings."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return yaml.safe_load(value) if from_cli else value
    if origin in (typing.Union, types.UnionType):
        if value is None or (from_cli and str(value).lower() in {"none", "null"}):
            if type(None) in args:
                return None
            raise ValueError("null is not allowed")
        members = [a for a in args if a is not type(None)]
        # Try the member whose kind matches the value first, so `5` stays an int in `int | str`.
        members.sort(key=lambda a: 0 if isinstance(a, type) and isinstance(value, a) else 1)
        errors = []
        for member in members:
            try:
                return coerce_value(value, member, from_cli)
            except (ValueError, TypeError) as err:
                errors.append(str(err))
        raise ValueError("; ".join(errors))
    if origin is typing.Literal:
        if value in args or (from_cli and any(str(a) == value for a in args)):
            return next(a for a in args if a == value or str(a) == value)
        raise ValueError(f"one of {list(args)}")
    if origin in (list, tuple) or tp in (list, tuple):
        item_tp = args[0] if args else Any
        if from_cli and isinstance(value, str):
            loaded = yaml.safe_load(value)
            value = loaded if isinstance(loaded, list) else [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError("a list")
        return [coerce_value(v, item_tp, from_cli and isinstance(v, str)) for v in value]
    if origin is dict or tp is dict:
        if from_cli and isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, dict):
            raise ValueError("a mapping")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_cli and isinstance(value, str):
            return _parse_bool(value)
        raise ValueError("true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ValueError("an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads `1e-5` as a string
            return float(value)
        raise ValueError("a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError("a string")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise ValueError(f"one of {[m.value for m in tp]}") from None
    return value


def _cli_overrides(argv: list[str]) -> list[tuple[str, Any]]:
    """`--key value`, `--key=value` and bare `--flag` (true) into (key, string) pairs."""
    pairs: list[tuple[str, Any]] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--") or len(token) == 2:
            raise RecipeError(f"command line: expected --key value, got {token!r}")
        key = token[2:].replace("-", "_")
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value = argv[i + 1]
            i += 2
        else:
            value = "true"
            i += 1
        pairs.append((key, value))
    return pairs


def _unknown_key_error(key: str, source: str, index: dict) -> RecipeError:
    close = difflib.get_close_matches(key, index.keys(), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else "; see README 'Recipe keys' for the valid keys"
    return RecipeError(f"{source}: unknown key '{key}'{hint}")


def read_recipe_file(path: str | os.PathLike) -> dict[str, Any]:
    """The YAML mapping in `path`, with one-line errors for a missing file or a file that is not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path} (recipes live in recipes/, e.g. recipes/specialist.yaml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a flat mapping of key: value, got {type(data).__name__}")
    return data


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _checked_value(key: str, raw: Any, source: str, index: dict, from_cli: bool) -> Any:
    """`raw` converted to the type of field `key`, or a RecipeError naming the source, key and what is right."""
    if key in _FORBIDDEN_KEYS:
        raise RecipeError(f"{source}: key '{key}' is not accepted: {_FORBIDDEN_KEYS[key]}")
    if key not in index:
        raise _unknown_key_error(key, source, index)
    cls, f = index[key]
    tp = _hints(cls).get(f.name, Any)
    try:
        value = coerce_value(raw, tp, from_cli)
    except (ValueError, TypeError) as err:
        raise RecipeError(
            f"{source}: key '{key}' expects {_type_name(tp)} ({err}), got {raw!r} ({type(raw).__name__})"
        ) from None
    choices = f.metadata.get("choices") if f.metadata else None
    if choices and value is not None and value not in choices:
        raise RecipeError(f"{source}: key '{key}' must be one of {list(choices)}, got {value!r}")
    return value


def resolve_recipe(path: str | os.PathLike, argv: list[str] | None = None,
                   classes: tuple[type, ...] | None = None) -> dict[str, Any]:
    """The recipe at `path` with `argv` overrides applied, every key known and every value of its type."""
    index = _field_index(classes or recipe_dataclasses())
    entries = [(k, v, str(path), False) for k, v in read_recipe_file(path).items()]
    entries += [(k, v, "command line", True) for k, v in _cli_overrides(list(argv or []))]
    return {key: _checked_value(key, raw, source, index, from_cli) for key, raw, source, from_cli in entries}


def check_overrides(argv: list[str], source: str = "command line",
                    classes: tuple[type, ...] | None = None) -> dict[str, Any]:
    """`--key value` pairs checked and typed like recipe keys, without a recipe file (e.g. the benchmark's)."""
    index = _field_index(classes or recipe_dataclasses())
    return {key: _checked_value(key, raw, source, index, True) for key, raw in _cli_overrides(list(argv))}


def build_dataclass(cls: type, mapping: dict[str, Any], source: str) -> Any:
    """One dataclass from a mapping (e.g. an entry of a list in a recipe), with the same key and type
    checks as top-level recipe keys."""
    if not isinstance(mapping, dict):
        raise RecipeError(f"{source}: expected a mapping of key: value, got {type(mapping).__name__}")
    index = _field_index((cls,))
    values = {key: _checked_value(key, raw, source, index, from_cli=False) for key, raw in mapping.items()}
    try:
        return cls(**values)
    except TypeError as err:
        raise RecipeError(f"{source}: {err}") from None


def build_recipe(values: dict[str, Any], path: str | os.PathLike,
                 classes: tuple[type, ...] | None = None) -> tuple[Any, ...]:
    """One instance per dataclass from resolved recipe values (see `resolve_recipe`)."""
    classes = classes or recipe_dataclasses()
    index = _field_index(classes)
    built = []
    for cls in classes:
        kwargs = {k: v for k, v in values.items() if index[k][0] is cls}
        try:
            built.append(cls(**kwargs))
        except (ValueError, TypeError) as err:
            hint = ""
            if "bf16" in str(err):
                hint = " (on a machine without a GPU or TPU, set use_cpu: true and bf16: false, or override them)"
            raise RecipeError(f"{path}: invalid {cls.__name__}: {err}{hint}") from None
    return tuple(built)


def load_recipe(path: str | os.PathLike, argv: list[str] | None = None,
                classes: tuple[type, ...] | None = None) -> tuple[Any, ...]:
    """Read the recipe at `path`, apply `argv` overrides and return one instance per dataclass
    (by default DataArguments, ModelConfig, SFTConfig, SpeedArguments)."""
    return build_recipe(resolve_recipe(path, argv, classes), path, classes)
