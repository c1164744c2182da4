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


def test_a_constrained_answer_looping_inside_a_string_is_pushed_to_close_it():
    """Rows that loop get their quote tokens raised above every other token (the grammar then picks the one that
    closes the string); a row that does not loop, or has not yet written a whole window, is left alone."""
    import numpy as np

    from secml_recipes.use.loops import CLOSE_WINDOW, hf_quote_tokens, quote_boost

    class Vocab:
        texts = ["a", '"', '",', "b", '"}', "c"]

        def __len__(self):
            return len(self.texts)

        def decode(self, ids):
            return "".join(self.texts[i] for i in ids)

    quotes = hf_quote_tokens(Vocab())
    assert quotes.tolist() == [1, 2, 4]
    looping = [0, 3] * CLOSE_WINDOW
    rng = random.Random(0)
    varied = [rng.randrange(6) for _ in range(2 * CLOSE_WINDOW + 1)]
    scores = torch.zeros(3, 6)
    assert quote_boost([looping, varied, looping[:CLOSE_WINDOW]], quotes, scores) == 1
    assert scores[0].argmax().item() in quotes and scores[0, 1] == 1000.0
    assert not scores[1:].any()
    assert np.array_equal(quotes, hf_quote_tokens(Vocab()))
