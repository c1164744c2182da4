"""Repetition cycles in greedy answers. Small models under greedy decoding fall into cycles (a unit of a few tokens
repeated until the token limit): a free answer caught in one is stopped (`is_looping`, `LoopStop`: the answer would
have run to the limit unparsed anyway), and a constrained one is pushed to close the string it loops in
(`StringCloser`, `quote_boost`), after which the grammar keeps the rest of the answer valid.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch

# A free answer whose last LOOP_WINDOW tokens repeat with a period of at most LOOP_PERIOD tokens has entered a
# cycle that greedy decoding does not leave (every smoke answer that ran into the token limit did so in such a
# cycle): the evaluation stops it there instead of spending the rest of the budget on it (`stop_loops`).
LOOP_WINDOW, LOOP_PERIOD = 192, 64
# Under a grammar a loop inside a string is broken sooner: once the last 48 tokens repeat a unit of at most 16, the
# tokens that close a JSON string are preferred (`StringCloser`); the grammar keeps the rest of the answer valid.
CLOSE_WINDOW, CLOSE_PERIOD = 48, 16


def is_looping(ids, window: int = LOOP_WINDOW, period: int = LOOP_PERIOD) -> bool:
    """Whether the last `window` of `ids` are one unit of at most `period` tokens repeated (only the last
    window + period tokens are read: called at every step, it must not grow with the answer)."""
    ids = list(ids[-(window + period) :])
    if len(ids) < window + 1:
        return False
    tail = ids[-window:]
    return any(tail == ids[-window - p : -p] for p in range(1, min(period, len(ids) - window) + 1))


def in_string_loop(ids) -> bool:
    """Whether a constrained answer `ids` has entered the short cycle that `StringCloser` and `quote_boost` break."""
    return is_looping(ids, CLOSE_WINDOW, CLOSE_PERIOD)


# Quote-token ids per model or tokenizer, held weakly so that a cached vocabulary never keeps a model in memory.
_QUOTES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _quote_ids(owner, size: int, text) -> np.ndarray:
    if owner not in _QUOTES:
        _QUOTES[owner] = np.array([i for i in range(size) if text(i).startswith('"')], dtype=np.int64)
    return _QUOTES[owner]


def llama_quote_tokens(llm) -> np.ndarray:
    """Ids of the tokens whose text starts with a double quote (`"`, `",`, `"}` ...): what closes a JSON string."""
    return _quote_ids(llm, llm.n_vocab(), lambda i: llm.detokenize([i], special=False).decode("utf-8", "replace"))


class StringCloser:
    """A llama.cpp logits processor for constrained answers: when the answer has entered a short repetition cycle
    (`is_looping` over CLOSE_WINDOW tokens), raise the tokens that start with a quote above all others, so that the
    grammar's allowed token that ends the string (or the list item) wins and the answer moves on. Without it a
    looping string runs to its length bound, and a few such strings spend the whole token budget."""

    def __init__(self, llm, prompt_length: int):
        self.quotes, self.prompt_length, self.closed = llama_quote_tokens(llm), prompt_length, 0

    def __call__(self, input_ids, scores):
        if in_string_loop(input_ids[self.prompt_length :]):
            scores[self.quotes] += 1000.0
            self.closed += 1
        return scores


class LoopStop:
    """A transformers stopping criterion: True for each free row of the batch whose answer `is_looping` (a row
    already done stays done; rows under a constraint are never stopped: their bounds end them)."""

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


def quote_boost(rows_new_ids: list[list[int]], quotes: np.ndarray, scores: torch.Tensor) -> int:
    """The transformers side of `StringCloser`: raise the quote tokens of every row whose answer is looping; the
    number of rows raised."""
    raised = 0
    for row, new in enumerate(rows_new_ids):
        if in_string_loop(new):
            scores[row, torch.from_numpy(quotes)] += 1000.0
            raised += 1
    return raised


def hf_quote_tokens(tokenizer) -> np.ndarray:
    """Ids of a transformers tokenizer's tokens whose text starts with a double quote (once per tokenizer: a
    128k vocabulary takes a second or two)."""
    return _quote_ids(tokenizer, len(tokenizer), lambda i: tokenizer.decode([i]))
