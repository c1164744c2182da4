"""Rows whose trained part `max_length` would cut: dropped by default, counted for train and eval.

A specialist completion (or a generalist's last assistant turn) cut by `max_length` trains the model on an
enriched report without its end and without the end-of-turn token: it learns never to stop. The trainers prepare
rows with TRL (tokens and labels, untruncated), then `fit_to_max_length` keeps the rows whose every trained token
fits (`truncation_mode` says which end is kept) and truncates only their untrained remainder; with the recipe's
`keep_truncated_rows: true` cut rows are kept truncated (TRL's behaviour) and still counted. Rows left with no
trained token are always dropped. `shortest_rows_fit` refuses, before any model loads, a `max_length` that would
cut every row, from the token lengths of the few shortest rows.
"""

from __future__ import annotations

import json
import logging

from secml_recipes.train.recipe import RecipeError

logger = logging.getLogger(__name__)
IGNORE_INDEX = -100


def _trained_part_fits(labels: list[int], max_length: int, keep_end: bool) -> bool:
    n = len(labels)
    if n <= max_length:
        return True
    trained = [i for i, label in enumerate(labels) if label != IGNORE_INDEX]
    if not trained:
        return True  # nothing to cut (dropped below as carrying no trained token)
    return trained[0] >= n - max_length if keep_end else trained[-1] < max_length


def fit_to_max_length(dataset, max_length: int, truncation_mode: str, keep_truncated: bool, name: str):
    """(dataset, counts): rows fitted to `max_length` and {rows, cut, dropped, kept_truncated, no_trained_token}."""
    keep_end = truncation_mode == "keep_end"
    window = slice(-max_length, None) if keep_end else slice(None, max_length)
    flagged = dataset.map(
        lambda ex: {"_fits": _trained_part_fits(ex["labels"], max_length, keep_end)}, desc=f"Checking {name} lengths"
    )
    cut = flagged["_fits"].count(False)
    if not keep_truncated and cut:
        flagged = flagged.filter(lambda ex: ex["_fits"], desc=f"Dropping {name} rows max_length would cut")
    fitted = flagged.map(
        lambda ex: {"input_ids": ex["input_ids"][window], "labels": ex["labels"][window]},
        desc=f"Truncating {name} dataset",
    )
    before = len(fitted)
    fitted = fitted.filter(lambda ex: any(label != IGNORE_INDEX for label in ex["labels"]), desc="Dropping untrained")
    kept_cut = fitted["_fits"].count(False)
    fitted = fitted.remove_columns(["_fits"])
    counts = {
        "rows": len(dataset),
        "cut": cut,
        "dropped": len(dataset) - len(fitted),
        "kept_truncated": kept_cut,
        "no_trained_token": before - len(fitted),
    }
    if cut:
        action = "kept truncated (keep_truncated_rows)" if keep_truncated else "dropped"
        logger.warning(
            "%s: %d of %d rows have a trained part longer than max_length=%d: %s; raise max_length to train on them%s",
            name,
            cut,
            len(dataset),
            max_length,
            action,
            "" if keep_truncated else " (or set keep_truncated_rows: true)",
        )
    return fitted, counts


def _conversation(row: dict) -> tuple[list, list | None]:
    if "messages" in row:
        tools = row.get("tools")
        return row["messages"], json.loads(tools) if isinstance(tools, str) else tools
    return list(row["prompt"]) + list(row["completion"]), None


def shortest_rows_fit(dataset, tokenizer, max_length: int | None, keep_truncated: bool, split: str, k: int = 8) -> None:
    """Refuse (RecipeError) a `max_length` below the token length of the `k` shortest rows (by characters): then it
    would cut every row's trained part. Tokenizes `k` rows, not the corpus."""
    if max_length is None or keep_truncated or len(dataset) == 0:
        return
    rows = dataset.to_list()
    shortest = sorted(rows, key=lambda r: len(json.dumps(r, default=str)))[:k]
    lengths = []
    for row in shortest:
        messages, tools = _conversation(row)
        ids = tokenizer.apply_chat_template(messages, tools=tools, tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        lengths.append(len(ids))
    if min(lengths) > max_length:
        raise RecipeError(
            f"max_length: {max_length} tokens would cut the trained part of every {split} row (the shortest of "
            f"{len(rows)} rows are {min(lengths)}+ tokens); raise max_length to at least {min(lengths)}, or set "
            "keep_truncated_rows: true to train on cut rows"
        )
