"""Repetition cycles in greedy answers. Small models under greedy decoding fall into cycles (a unit of a few tokens
repeated until the token limit): a free answer caught in one is stopped (`is_looping`, `LoopStop`: the answer would
have run to the limit unparsed anyway), and a constrained one is pushed to close the string it loops in
(`LoopCloser`, `closer_boost`): the string, or the list whose items repeat, ends, and the grammar keeps the rest of
the answer valid.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch

# A free answer whose last LOOP_WINDOW tokens repeat with a period of at most LOOP_PERIOD tokens has entered a
# cycle that greedy decoding does not leave (every smoke answer that ran into the token limit did so in such a
# cycle): the evaluation stops it there instead of spending the rest of the budget on it (`stop_loops`).
LOOP_WINDOW, LOOP_PERIOD = 192, 64
# Under a grammar a loop is broken sooner: once the last 48 tokens repeat a unit of at most 64 (a word inside a
# string, or one whole list item written over and over), the tokens that close what the answer loops in are
# preferred (`LoopCloser`, `closer_kind`): a unit without a quote loops inside one string, so the tokens that start
# with a quote end it; a unit with a quote is a list item written again and again, so the tokens that start with "]"
# end the list, once the item being written is closed (inside its string a "]" is only one more character, and a
# quote would open one more item, `""` after `""`); the grammar keeps the rest of the answer valid.
CLOSE_WINDOW, CLOSE_PERIOD = 48, 64
CLOSE_BOOST = 1000.0


def is_looping(ids, window: int = LOOP_WINDOW, period: int = LOOP_PERIOD) -> bool:
    """Whether the last `window` of `ids` are one unit of at most `period` tokens repeated (only the last
    window + period tokens are read: called at every step, it must not grow with the answer)."""
    return loop_period(ids, window, period) > 0


def loop_period(ids, window: int = CLOSE_WINDOW, period: int = CLOSE_PERIOD) -> int:
    """The shortest unit (in tokens, at most `period`) that the last `window` of `ids` repeat; 0 when they do not."""
    ids = list(ids[-(window + period) :])
    if len(ids) < window + 1:
        return 0
    tail = ids[-window:]
    return next((p for p in range(1, min(period, len(ids) - window) + 1) if tail == ids[-window - p : -p]), 0)


def in_constrained_loop(ids) -> bool:
    """Whether a constrained answer `ids` has entered the cycle that `LoopCloser` and `closer_boost` break."""
    return loop_period(ids) > 0


def closer_kind(answer_text: str, unit_text: str) -> str | None:
    """What ends a loop whose repeated unit reads `unit_text`, with the answer so far `answer_text`: "quotes" for a
    loop inside one string (the unit has no quote), "brackets" outside any string (a list item written again and
    again, or a run of numbers), None while a repeated item's own string is still being written."""
    if not inside_json_string(answer_text):
        return "brackets"
    return None if '"' in unit_text else "quotes"


# Closer-token ids per model or tokenizer, held weakly so that a cached vocabulary never keeps a model in memory.
_CLOSERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def inside_json_string(text: str) -> bool:
    """Whether `text`, the start of a JSON answer, ends inside a string (an odd number of unescaped quotes)."""
    inside = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and inside:
            escaped = True
        elif char == '"':
            inside = not inside
    return inside


@dataclass(frozen=True)
class Closers:
    """Token ids whose text starts with a double quote (`"`, `",`, `"}` ...: what ends a JSON string) and with a
    closing bracket (`]`, `]}` ...: what ends a list)."""

    quotes: np.ndarray
    brackets: np.ndarray

    def raise_in(self, scores, kind: str) -> None:
        """Raise, in one row of logits (a numpy array or a torch tensor), the tokens that end a string ("quotes") or
        a list ("brackets")."""
        ids = self.quotes if kind == "quotes" else self.brackets
        scores[torch.from_numpy(ids) if isinstance(scores, torch.Tensor) else ids] += CLOSE_BOOST


def _closer_ids(owner, size: int, text) -> Closers:
    if owner not in _CLOSERS:
        texts = [text(i) for i in range(size)]
        ids = lambda first: np.array([i for i, t in enumerate(texts) if t.startswith(first)], dtype=np.int64)  # noqa: E731
        _CLOSERS[owner] = Closers(ids('"'), ids("]"))
    return _CLOSERS[owner]


def llama_closer_tokens(llm) -> Closers:
    """The quote and bracket tokens of a llama.cpp model's vocabulary."""
    return _closer_ids(llm, llm.n_vocab(), lambda i: llm.detokenize([i], special=False).decode("utf-8", "replace"))


class LoopCloser:
    """A llama.cpp logits processor for constrained answers: when the answer has entered a repetition cycle
    (`in_constrained_loop`), raise the tokens that close the string it is in, or else the list, above all others, so
    that the grammar's allowed one wins and the answer moves on. Without it a looping string runs to its length bound
    and a repeated list item to the list's, and a few of them spend the whole token budget."""

    def __init__(self, llm, prompt_length: int):
        self.llm, self.closers, self.prompt_length, self.closed = llm, llama_closer_tokens(llm), prompt_length, 0

    def __call__(self, input_ids, scores):
        new = input_ids[self.prompt_length :]
        period = loop_period(new)
        if period:
            text = lambda ids: self.llm.detokenize(list(ids), special=False).decode("utf-8", "replace")  # noqa: E731
            kind = closer_kind(text(new), text(new[-period:]))
            if kind:
                self.closers.raise_in(scores, kind)
                self.closed += 1
        return scores


class LoopStop:
    """A transformers stopping criterion: True for each free row of the batch whose answer `is_looping` (a row
    already done stays done; rows under a JSON or tool-call constraint are never stopped: their bounds end them, and
    a cut would leave them invalid; a plain-text-only turn counts as free, `Constraint.text_only`)."""

    def __init__(self, prompt_length: int, free: list[bool]):
        self.prompt_length, self.free, self.done = prompt_length, free, [False] * len(free)

    @property
    def stopped(self) -> int:
        return sum(self.done)

    def __call__(self, input_ids, scores, **kwargs):
        new = input_ids[:, self.prompt_length :]
        if new.shape[1] % 8 == 0:
            for i, row in enumerate(new.tolist()):
                self.done[i] = self.done[i] or (self.free[i] and is_looping(row))
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


def closer_boost(rows_recent_ids: list[list[int]], closers: Closers, scores: torch.Tensor, answer_text, decode) -> int:
    """The transformers side of `LoopCloser`: raise the closers of every row whose answer is looping
    (`rows_recent_ids`: the end of each answer, at least CLOSE_WINDOW + CLOSE_PERIOD tokens of it; `answer_text(row)`:
    a row's whole answer, decoded only then; `decode(ids)`: the text of token ids); the number of rows raised."""
    raised = 0
    for row, recent in enumerate(rows_recent_ids):
        period = loop_period(recent)
        kind = period and closer_kind(answer_text(row), decode(recent[-period:]))
        if kind:
            closers.raise_in(scores[row], kind)
            raised += 1
    return raised


def hf_closer_tokens(tokenizer) -> Closers:
    """The quote and bracket tokens of a transformers tokenizer (once per tokenizer: a 128k vocabulary takes a
    second or two)."""
    return _closer_ids(tokenizer, len(tokenizer), lambda i: tokenizer.decode([i]))
