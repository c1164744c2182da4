"""Flat YAML recipes read by transformers' `HfArgumentParser`, with errors that say what would be right.

A recipe file holds data keys (`DataArguments`), model keys (TRL's `ModelConfig`, plus `model_family` and
`pad_token`), every `SFTConfig` key and the speed keys (`SpeedArguments`) side by side. `--key value`,
`--key=value` and a bare `--flag` on the command line win over the file. The library parser decides each key's
type, choices and boolean spelling from the dataclasses; `RecipeParser` adds what a recipe user needs on top:
- every key and value is checked before anything heavy is imported or loaded, so a typo costs a second, not a
  model download;
- an unknown key names the file (or the command line) and the closest valid key;
- `hub_token` is refused (recipes are saved beside models; the token lives in the environment);
- a wrong type, a missing file or a value the dataclass refuses is one line naming the key;
- a value is never rewritten (`--output_dir=runs/out-a` stays `runs/out-a`); `null` means None; list keys take a
  YAML list, `[a, b]` or `a,b`; dict keys take a mapping or JSON.
A training recipe that omits `output_dir` writes where `layout.trained_model(task)` says.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from secml_recipes import layout
from secml_recipes.command_help import recipe_help
from secml_recipes.corpus.mixture import parse_mixture
from secml_recipes.families import FAMILY_NAMES


class RecipeError(ValueError):
    """A recipe or an override is wrong; the message names the file, the key and what would be right."""


@dataclass
class DataArguments:
    """Where the examples come from and how batches are shaped."""

    task: str = field(
        default="specialist",
        metadata={
            "help": "specialist (raw report -> enriched report) or generalist (agentic tool episodes)",
            "choices": ["specialist", "generalist"],
        },
    )
    dataset_path: str = field(
        default=str(layout.corpus("full")),
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
        metadata={
            "help": "fixed padded lengths on XLA (default: xla_bucket_count lengths planned from the "
            "training data's token lengths)"
        },
    )
    xla_bucket_count: int = field(
        default=4, metadata={"help": "how many bucket lengths to plan on XLA (= compiled step graphs)"}
    )
    loss_plot: bool = field(default=True, metadata={"help": "write loss.png beside the trained model"})
    dataset_mixture: list[dict] | None = field(
        default=None,
        metadata={
            "help": "several corpora by weight instead of dataset_path: a list of {path, weight}; a weight "
            "multiplies that source's training rows (0.5 a seeded half, 3 three copies); "
            "see docs/scan-data.md"
        },
    )

    keep_truncated_rows: bool = field(
        default=False,
        metadata={
            "help": "train on rows whose trained part max_length would cut (default: drop them, counted per split; "
            "a cut completion never ends with its end-of-turn token)"
        },
    )
    nonfinite_skip_steps: int = field(
        default=0,
        metadata={
            "help": "optimizer steps with a NaN/inf gradient to skip before the run stops (default 0: stop at the "
            "first); non-finite weights are never saved"
        },
    )
    loss_explosion_factor: float = field(
        default=10.0,
        metadata={"help": "warn when the logged loss exceeds this many times its early median (0: never)"},
    )

    def __post_init__(self):
        if self.dataset_mixture is not None:
            parse_mixture(self.dataset_mixture)


@functools.cache
def _model_arguments() -> type:
    """TRL's ModelConfig plus the model's chat family and the tokenizer's pad token (SFTConfig's `pad_token` is
    deprecated in TRL 1.16). What the family decides is resolved with the run's settings (run_settings.py)."""
    # lazy: the torch stack loads only when a model is touched
    from trl import ModelConfig

    @dataclass
    class ModelArguments(ModelConfig):
        model_family: str | None = field(
            default=None,
            metadata={
                "help": "chat format of the model (template, tool calls, end-of-turn and padding tokens); default: "
                "detected from its tokenizer and config (docs/models.md)",
                "choices": FAMILY_NAMES,
            },
        )
        pad_token: str | None = field(
            default=None, metadata={"help": "padding token set on the tokenizer (default: the model family's)"}
        )

    return ModelArguments


_FORBIDDEN_KEYS = {
    "hub_token": "put the token in the HF_TOKEN environment variable instead; recipes are saved beside models",
    "push_to_hub_token": "put the token in the HF_TOKEN environment variable instead",
}
_NULLS = {"null", "~"}


@functools.cache
def recipe_dataclasses() -> tuple[type, ...]:
    """The dataclasses a training recipe fills, in the order `load_recipe` returns them."""
    # lazy: the torch stack loads only when a model is touched
    from trl import SFTConfig

    return (DataArguments, _model_arguments(), SFTConfig, SpeedArguments)


TRAIN_USAGE = "secml train RECIPE.yaml [--key value ...]"


@dataclass
class SpeedArguments:
    """Recipe keys for speed choices that do not change the loss; what each does at run time is in speed.py
    (docs/speed.md)."""

    checkpointed_layers: str = field(
        default="all",
        metadata={
            "help": "with activation_checkpointing: 'all' decoder layers, 'auto' (as few as the memory budget "
            "allows, measured), or a number N (the first N layers)"
        },
    )
    activation_memory_gib: float | None = field(
        default=None,
        metadata={
            "help": "memory for saved activations that 'auto' may plan with (default: the accelerator's "
            "free memory after weights, gradients, optimizer state and a reserve)"
        },
    )
    memory_limit_gib: float | None = field(
        default=None,
        metadata={
            "help": "plan 'auto' as if the accelerator had only this much memory for the whole run (a shared "
            "GPU, or a benchmark's memory bound); default: all of it"
        },
    )
    liger_kernels: str = field(
        default="auto",
        metadata={
            "help": "Liger RMSNorm/SwiGLU/RoPE kernels: auto (on CUDA when liger-kernel is installed), true, false",
            "choices": ["auto", "true", "false"],
        },
    )

    def __post_init__(self):
        value = str(self.checkpointed_layers).strip().lower()
        if value not in ("all", "auto") and not value.isdigit():
            raise ValueError(
                f"checkpointed_layers must be 'all', 'auto' or a number of layers, got {self.checkpointed_layers!r}"
            )
        self.checkpointed_layers = value
        for key in ("activation_memory_gib", "memory_limit_gib"):
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                raise ValueError(f"{key} must be positive, got {getattr(self, key)}")


def training_recipe_help() -> str:
    """`secml train --help`: every key a training recipe takes, by the dataclass that owns it; the few keys of our
    own first, then TRL's SFT keys, then the hundred-odd TrainingArguments keys (with SFTConfig's defaults)."""
    # lazy: the torch stack loads only when a model is touched
    from transformers import TrainingArguments

    data, model, sft, speed = recipe_dataclasses()
    inherited = {f.name for f in dataclasses.fields(TrainingArguments)}
    sft_fields = dataclasses.fields(sft)
    return recipe_help(
        TRAIN_USAGE,
        [
            ("data keys (DataArguments)", data),
            ("model keys (ModelArguments: TRL's ModelConfig, model_family, pad_token)", model),
            ("speed keys (SpeedArguments)", speed),
            ("SFT keys (TRL's SFTConfig)", [f for f in sft_fields if f.name not in inherited]),
            (
                "training keys (transformers' TrainingArguments, SFTConfig's defaults)",
                [f for f in sft_fields if f.name in inherited],
            ),
        ],
        description="A recipe is a flat YAML mapping of these keys; --key value on the command line wins over the "
        "file (docs/recipes.md). Several devices: accelerate launch --config_file accelerate_configs/<cfg>.yaml "
        "-m secml_recipes.sft RECIPE.yaml.",
        skip=_FORBIDDEN_KEYS,
    )


def split_overrides(argv: list[str]) -> list[tuple[str, str | None]]:
    """`--key value`, `--key=value` and a bare `--flag` (value None) into (key, value) pairs. Only the key is
    normalised (`--max-length` is `max_length`); the value is kept exactly as typed."""
    pairs: list[tuple[str, str | None]] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--") or len(token) == 2:
            raise RecipeError(f"command line: expected --key value, got {token!r}")
        key, has_value, value = token[2:].partition("=")
        key = key.replace("-", "_")
        if has_value:
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value, i = argv[i + 1], i + 2
        else:
            value, i = None, i + 1
        pairs.append((key, value))
    return pairs


def read_recipe_file(path: str | os.PathLike) -> dict[str, Any]:
    """The YAML mapping in `path`, with one-line errors for a missing file or a file that is not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(
            f"recipe file not found: {path} (recipes live in recipes/, e.g. recipes/full/specialist.yaml)"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a flat mapping of key: value, got {type(data).__name__}")
    return data


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _accepts(hint: Any, kind: type) -> bool:
    """Whether a field typed `hint` takes a value of `kind` (dict, list) as it is."""
    members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return any(m is kind or typing.get_origin(m) is kind for m in members)


class RecipeParser:
    """`HfArgumentParser` over the recipe's dataclasses, plus recipe files, key checks and one-line errors."""

    def __init__(self, classes: tuple[type, ...]):
        # lazy: the torch stack loads only when a model is touched
        from transformers import HfArgumentParser

        self.classes = classes
        # conflict_handler: a key two dataclasses declare (pad_token) is one option; `owner` routes its value.
        self.parser = HfArgumentParser(classes, allow_abbrev=False, conflict_handler="resolve")
        self.actions = {
            a.dest: a
            for a in reversed(self.parser._actions)
            if a.option_strings and not a.option_strings[0].startswith(("--no_", "--no-")) and a.dest != "help"
        }
        self.owner: dict[str, tuple[type, dataclasses.Field]] = {}
        for cls in classes:  # a key two dataclasses declare belongs to the first
            for f in dataclasses.fields(cls):
                if f.init:
                    self.owner.setdefault(f.name, (cls, f))
        hints = {cls: typing.get_type_hints(cls) for cls in classes}
        self.hints = {name: hints[cls][f.name] for name, (cls, f) in self.owner.items()}

    # --- keys and values ---------------------------------------------------------------------------------------

    def check_key(self, key: str, source: str) -> None:
        if key in _FORBIDDEN_KEYS:
            raise RecipeError(f"{source}: key '{key}' is not accepted: {_FORBIDDEN_KEYS[key]}")
        if key not in self.owner or key not in self.actions:
            close = difflib.get_close_matches(key, self.owner.keys(), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else "; see docs/recipes.md for the valid keys"
            raise RecipeError(f"{source}: unknown key '{key}'{hint}")

    def value(self, key: str, raw: Any, source: str, from_cli: bool) -> Any:
        """`raw` (a YAML value, or a command-line string; None for a bare flag) typed as the library parser types
        `--key`, or a RecipeError naming the source, the key and what is expected."""
        self.check_key(key, source)
        action, hint = self.actions[key], self.hints[key]
        if from_cli and raw is None:
            if action.const is None:
                raise RecipeError(f"{source}: key '{key}' needs a value (--{key} VALUE)")
            return action.const
        if raw is None or (from_cli and self._means_null(raw, action)):
            if not self._allows_none(key):
                raise RecipeError(f"{source}: key '{key}' cannot be null; it expects {_type_name(hint)}")
            return None
        if isinstance(raw, dict) or (from_cli and _accepts(hint, dict) and raw.lstrip().startswith("{")):
            return self._mapping(key, raw, source, hint)
        if action.nargs == "+" or (isinstance(raw, list) and _accepts(hint, list)):
            return [self._scalar(key, item, source, action, hint) for item in self._items(raw, from_cli)]
        return self._scalar(key, raw, source, action, hint)

    def _allows_none(self, key: str) -> bool:
        _, f = self.owner[key]
        return type(None) in typing.get_args(self.hints[key]) or f.default is None

    @staticmethod
    def _means_null(raw: str, action: argparse.Action) -> bool:
        # `none` is a real value of some string keys (`report_to none`: no reporters); `null` is YAML's None.
        return raw in _NULLS or (raw.lower() == "none" and action.type not in (str, None) and not action.choices)

    @staticmethod
    def _items(raw: Any, from_cli: bool) -> list:
        if isinstance(raw, list):
            return raw
        if from_cli:
            loaded = yaml.safe_load(raw) if raw.lstrip().startswith("[") else None
            return loaded if isinstance(loaded, list) else [v.strip() for v in raw.split(",") if v.strip()]
        return [raw]

    def _mapping(self, key: str, raw: Any, source: str, hint: Any) -> dict:
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as err:
                raise RecipeError(f"{source}: key '{key}' expects a JSON mapping ({err})") from None
        if not isinstance(raw, dict) or not _accepts(hint, dict):
            raise RecipeError(f"{source}: key '{key}' expects {_type_name(hint)}, got a mapping")
        return raw

    def _scalar(self, key: str, raw: Any, source: str, action: argparse.Action, hint: Any) -> Any:
        if isinstance(raw, dict) and action.type is dict:  # e.g. one entry of a list of mappings
            return raw
        text = raw if isinstance(raw, str) else json.dumps(raw) if isinstance(raw, bool) else str(raw)
        try:
            value = action.type(text) if action.type is not None else text
        except (ValueError, TypeError, argparse.ArgumentTypeError) as err:
            expected = _type_name(action.type) if isinstance(action.type, type) else _type_name(hint)
            raise RecipeError(
                f"{source}: key '{key}' expects {expected} ({err}), got {raw!r} ({type(raw).__name__})"
            ) from None
        if action.choices is not None and value not in action.choices:
            raise RecipeError(f"{source}: key '{key}' must be one of {list(action.choices)}, got {raw!r}")
        return value

    # --- whole recipes ------------------------------------------------------------------------------------------

    def resolve(self, path: str | os.PathLike | None, argv: list[str]) -> dict[str, Any]:
        """The file's values with the command line's on top, every key known and every value typed."""
        entries = [(k, v, str(path), False) for k, v in (read_recipe_file(path) if path else {}).items()]
        entries += [(k, v, "command line", True) for k, v in split_overrides(list(argv))]
        return {key: self.value(key, raw, source, from_cli) for key, raw, source, from_cli in entries}

    def build(self, values: dict[str, Any], source: str) -> tuple[Any, ...]:
        """One instance per dataclass; what a dataclass refuses is a one-line error naming the source."""
        built = []
        for cls in self.classes:
            kwargs = {k: v for k, v in values.items() if self.owner[k][0] is cls}
            try:
                built.append(cls(**kwargs))
            except (ValueError, TypeError) as err:
                message = " ".join(str(err).split())
                if "bf16" in message:
                    message += (
                        " (on a machine without a GPU or TPU, set use_cpu: true and bf16: false, or override them)"
                    )
                raise RecipeError(f"{source}: invalid {cls.__name__}: {message}") from None
        return tuple(built)


@functools.cache
def recipe_parser(classes: tuple[type, ...] | None = None) -> RecipeParser:
    """The parser for `classes` (default: a training recipe's), built once per process."""
    return RecipeParser(classes or recipe_dataclasses())


def resolve_recipe(
    path: str | os.PathLike, argv: list[str] | None = None, classes: tuple[type, ...] | None = None
) -> dict[str, Any]:
    """The recipe at `path` with `argv` overrides applied, every key known and every value of its type. A
    training recipe without `output_dir` gets the layout's folder for its task."""
    values = recipe_parser(classes).resolve(path, list(argv or []))
    if classes is None:
        if "output_dir" not in values:
            values["output_dir"] = str(layout.trained_model(values.get("task", DataArguments.task)))
        if "activation_checkpointing" not in values and "gradient_checkpointing" not in values:
            # TRL's own default (on), given under transformers' current name: TRL sets the deprecated alias.
            values["activation_checkpointing"] = True
    return values


def check_overrides(
    argv: list[str], source: str = "command line", classes: tuple[type, ...] | None = None
) -> dict[str, Any]:
    """`--key value` pairs checked and typed like recipe keys, without a recipe file (e.g. the benchmark's)."""
    parser = recipe_parser(classes)
    return {key: parser.value(key, raw, source, True) for key, raw in split_overrides(list(argv))}


def build_dataclass(cls: type, mapping: dict[str, Any], source: str) -> Any:
    """One dataclass from a mapping (e.g. an entry of a list in a recipe), with the same key and type checks as
    top-level recipe keys."""
    if not isinstance(mapping, dict):
        raise RecipeError(f"{source}: expected a mapping of key: value, got {type(mapping).__name__}")
    parser = recipe_parser((cls,))
    (built,) = parser.build({k: parser.value(k, v, source, False) for k, v in mapping.items()}, source)
    return built


def build_recipe(
    values: dict[str, Any], path: str | os.PathLike, classes: tuple[type, ...] | None = None
) -> tuple[Any, ...]:
    """One instance per dataclass from resolved recipe values (see `resolve_recipe`)."""
    return recipe_parser(classes).build(values, str(path))


def load_recipe(
    path: str | os.PathLike, argv: list[str] | None = None, classes: tuple[type, ...] | None = None
) -> tuple[Any, ...]:
    """Read the recipe at `path`, apply `argv` overrides and return one instance per dataclass
    (by default DataArguments, ModelArguments, SFTConfig, SpeedArguments)."""
    return build_recipe(resolve_recipe(path, argv, classes), path, classes)
