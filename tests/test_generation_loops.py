"""Free answers that entered a repetition cycle are stopped (use/generation.py `is_looping`); nothing else is."""

import random

import torch

from secml_recipes.use.loops import LOOP_PERIOD, LOOP_WINDOW, LoopStop, is_looping


def test_a_cycle_of_up_to_the_longest_period_is_a_loop_and_varied_text_is_not():
    prefix = list(range(1000, 1100))
    for period in (1, 7, LOOP_PERIOD):
        unit = list(range(period))
        cycle = prefix + unit * (LOOP_WINDOW // period + 2)
        assert is_looping(cycle), period
        assert not is_looping(cycle[: len(prefix) + LOOP_WINDOW - 1])  # not yet a whole window of it
    too_long = list(range(LOOP_PERIOD + 1)) * 10
    assert not is_looping(too_long)
    varied = [(i * 7919) % 5000 for i in range(1000)]
    assert not is_looping(varied)
    # repeated structure with changing values (a JSON list of findings) is not a cycle
    items = [t for i in range(40) for t in (11, 12, 13, 100 + i, 14)]
    assert not is_looping(items)


def test_the_transformers_criterion_stops_only_free_rows_and_keeps_them_stopped():
    prompt = [[5, 5]] * 3
    loop = [1, 2, 3] * ((LOOP_WINDOW + 8) // 3 + 1)
    loop = loop[: (len(loop) // 8) * 8]
    varied = [(i * 31) % 97 for i in range(len(loop))]
    ids = torch.tensor([p + r for p, r in zip(prompt, [loop, loop, varied])])
    stop = LoopStop(2, [True, False, True])
    assert stop(ids, None).tolist() == [True, False, False]
    assert stop(ids[:, :-1], None).tolist() == [True, False, False]  # not a multiple of 8: not checked, kept
    assert stop.stopped == 1


def test_a_constrained_answer_in_a_loop_is_pushed_to_close_its_string_or_else_its_list():
    """A row looping inside one JSON string (a unit with no quote) gets its quote tokens raised above every other
    token; a row writing one list item over and over gets its "]" tokens raised once the item's string is closed, and
    nothing while inside it (a "]" there is one more character, a quote would open one more item): the grammar then
    picks the allowed closer. A row that does not loop, or has not yet written a whole window, is left alone."""
    import numpy as np

    from secml_recipes.use.loops import (
        CLOSE_PERIOD,
        CLOSE_WINDOW,
        closer_boost,
        closer_kind,
        hf_closer_tokens,
        inside_json_string,
        loop_period,
    )

    class Vocab:
        texts = ["a", '"', '",', "b", '"}', "c", "]", "]}", '{"x":["']

        def __len__(self):
            return len(self.texts)

        def decode(self, ids):
            return "".join(self.texts[i] for i in ids)

    vocab = Vocab()
    closers = hf_closer_tokens(vocab)
    assert closers.quotes.tolist() == [1, 2, 4] and closers.brackets.tolist() == [6, 7]
    in_string = [8] + [0, 3] * CLOSE_WINDOW  # {"x":["abab...
    assert loop_period(in_string) == 2
    # one list item of up to CLOSE_PERIOD tokens written over and over: ..."ab...ab","ab...ab",...
    item = [1] + [0, 3] * ((CLOSE_PERIOD - 3) // 2) + [2]
    in_list = [8, 0, 2] + item * 3  # ends right after an item's '",': outside any string
    inside_item = in_list + item[:4]  # the next copy of the item has begun: inside its string
    assert loop_period(in_list) == len(item) and loop_period(inside_item) == len(item)
    rng = random.Random(0)
    varied = [rng.randrange(8) for _ in range(2 * CLOSE_WINDOW + 1)]
    scores = torch.zeros(5, len(vocab))
    rows = [in_string, varied, in_string[:CLOSE_WINDOW], in_list, inside_item]
    assert closer_boost(rows, closers, scores, lambda row: vocab.decode(rows[row]), vocab.decode) == 2
    assert scores[0, closers.quotes].eq(1000.0).all() and scores[0].sum() == 1000.0 * len(closers.quotes)
    assert scores[3, closers.brackets].eq(1000.0).all() and scores[3].sum() == 1000.0 * len(closers.brackets)
    assert not scores[1:3].any() and not scores[4].any()
    assert closer_kind('{"x":[1,1,1', "1,") == "brackets" and closer_kind('{"x":"ab', "ab") == "quotes"
    assert hf_closer_tokens(vocab) is closers  # once per tokenizer
    plain = np.zeros(len(vocab), dtype=np.float32)
    closers.raise_in(plain, "quotes")  # the llama.cpp side raises a numpy row the same way
    assert plain.tolist() == scores[0].tolist()
    assert inside_json_string('{"a":"x\\"y') and not inside_json_string('{"a":"x\\\\"') and not inside_json_string("")
