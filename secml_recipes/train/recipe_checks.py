"""Every numeric recipe value checked before anything loads: one line naming the key and what is valid.

The dataclasses type each key (recipe.py); this table says which values a run can use. `--learning_rate nan`,
a batch size of 0 or `--max_train_samples -5` fail here in a second, not with a traceback after the model has
loaded (or, worse, by training on something else than asked). Rules are data: (key, where it lives, test, what is
valid); `check_recipe_values` applies them all and reports the first that fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from secml_recipes.train.recipe import RecipeError


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def positive(v) -> bool:
    return _number(v) and v > 0


def non_negative(v) -> bool:
    return _number(v) and v >= 0


def at_least_one(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def null_or_at_least_one(v) -> bool:
    return v is None or at_least_one(v)


def steps_or_unlimited(v) -> bool:
    return isinstance(v, int) and (v == -1 or v >= 1)


def fraction(v) -> bool:
    return _number(v) and 0 <= v < 1


def bucket_lengths(v) -> bool:
    return v is None or (isinstance(v, list) and len(v) > 0 and all(at_least_one(x) for x in v))


def explosion_factor(v) -> bool:
    return _number(v) and (v == 0 or v > 1)


def interval(v) -> bool:  # logging/save/eval steps: a count >= 1, or a fraction of the run in (0, 1)
    return v is None or (_number(v) and v > 0 and (v < 1 or float(v).is_integer()))


# (key, recipe part: data/model/training, valid, what is valid). Parts are the dataclasses of recipe_dataclasses().
RULES: tuple[tuple[str, str, Callable[[Any], bool], str], ...] = (
    ("learning_rate", "training", positive, "a finite number > 0 (e.g. 2e-5)"),
    ("per_device_train_batch_size", "training", at_least_one, "an integer >= 1"),
    ("per_device_eval_batch_size", "training", at_least_one, "an integer >= 1"),
    ("gradient_accumulation_steps", "training", at_least_one, "an integer >= 1"),
    ("max_steps", "training", steps_or_unlimited, "an integer >= 1, or -1 to train num_train_epochs"),
    ("num_train_epochs", "training", positive, "a finite number > 0"),
    ("max_length", "training", null_or_at_least_one, "an integer >= 1, or null for no truncation"),
    ("weight_decay", "training", non_negative, "a finite number >= 0"),
    ("max_grad_norm", "training", non_negative, "a finite number >= 0 (0: no clipping)"),
    ("warmup_steps", "training", non_negative, "a finite number >= 0 (a fraction < 1 of the run, or steps)"),
    ("adam_beta1", "training", fraction, "a number in [0, 1)"),
    ("adam_beta2", "training", fraction, "a number in [0, 1)"),
    ("adam_epsilon", "training", positive, "a finite number > 0"),
    ("logging_steps", "training", interval, "an integer >= 1, or a fraction of the run in (0, 1)"),
    ("save_steps", "training", interval, "an integer >= 1, or a fraction of the run in (0, 1)"),
    ("eval_steps", "training", interval, "an integer >= 1, a fraction of the run in (0, 1), or null"),
    ("max_train_samples", "data", null_or_at_least_one, "an integer >= 1, or null for every row"),
    ("max_eval_samples", "data", null_or_at_least_one, "an integer >= 1, or null for every row"),
    ("xla_bucket_lengths", "data", bucket_lengths, "a non-empty list of integers >= 1, or null to plan them"),
    ("xla_bucket_count", "data", at_least_one, "an integer >= 1"),
    ("nonfinite_skip_steps", "data", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
    ("loss_explosion_factor", "data", explosion_factor, "a finite number > 1, or 0 to turn the warning off"),
    ("lora_r", "model", at_least_one, "an integer >= 1"),
    ("lora_alpha", "model", positive, "a finite number > 0"),
    ("lora_dropout", "model", fraction, "a number in [0, 1)"),
)


def check_recipe_values(data_args, model_args, training_args, source: str = "recipe") -> None:
    """Raise RecipeError for the first recipe value no run can use (see RULES)."""
    parts = {"data": data_args, "model": model_args, "training": training_args}
    for key, part, valid, expected in RULES:
        holder = parts[part]
        if not hasattr(holder, key):
            continue
        value = getattr(holder, key)
        if key.startswith("lora_") and not getattr(model_args, "use_peft", False):
            continue
        if key == "num_train_epochs" and getattr(training_args, "max_steps", -1) > 0:
            continue  # max_steps decides the run's length
        if not valid(value):
            raise RecipeError(f"{source}: key '{key}' must be {expected}, got {value!r}")
