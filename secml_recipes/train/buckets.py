"""XLA bucket lengths planned from the training data, so static shapes cost little padding.

On XLA every distinct batch shape is a new compiled graph, so batches are padded to a few fixed lengths.
Fixed fractions of `max_length` (max/4, /2, /1) waste a lot: with `max_length: 8192` a batch whose
longest row has 4,200 tokens is padded to 8,192. Here the bucket lengths are chosen from the lengths the
data really has: batches are drawn the way the sampler draws them, and a small dynamic program picks the
`count` lengths (multiples of `multiple`, the largest covering the longest row) that minimise the padded
tokens of those batches. The number of compiled graphs stays `count`.
"""

from __future__ import annotations

import bisect
import random


def default_buckets(max_length: int) -> list[int]:
    return sorted({max(8, max_length // 4), max(8, max_length // 2), max_length})


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def token_lengths(dataset) -> list[int]:
    """Token count of every prepared row, read from the Arrow column (no Python copy of the token ids)."""
    # lazy: the torch stack loads only when a model is touched
    import pyarrow.compute as pc

    return pc.list_value_length(dataset.with_format("arrow")["input_ids"]).to_pylist()


def shuffled_batches(lengths: list[int], batch_size: int, epochs: int = 4, seed: int = 0):
    """The row lengths of each batch when `lengths` are shuffled into batches, over a few epochs (as the
    training sampler draws them)."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    for _ in range(epochs):
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            yield [lengths[i] for i in order[start : start + batch_size]]


def batch_maxima(lengths: list[int], batch_size: int, epochs: int = 4, seed: int = 0) -> list[int]:
    """The longest row of each batch of `shuffled_batches`."""
    return [max(rows) for rows in shuffled_batches(lengths, batch_size, epochs, seed)]


def plan_buckets(lengths: list[int], batch_size: int, count: int = 4, multiple: int = 128, seed: int = 0) -> list[int]:
    """At most `count` bucket lengths minimising the padded tokens of batches drawn from `lengths`."""
    if not lengths:
        raise ValueError("no rows to plan XLA buckets from")
    need = sorted(round_up(m, multiple) for m in batch_maxima(lengths, batch_size, seed=seed))
    candidates = sorted(set(need))
    # counts[j]: batches whose rounded maximum is candidates[j]
    counts = [0] * len(candidates)
    for n in need:
        counts[bisect.bisect_left(candidates, n)] += 1
    prefix = [0]
    for c in counts:
        prefix.append(prefix[-1] + c)
    m, inf = len(candidates), float("inf")
    # cost[t][j]: least padded length summed over batches with maxima <= candidates[j], using t buckets, the
    # largest being candidates[j]; choice[t][j]: the previous bucket's index (-1: none).
    cost = [[inf] * m for _ in range(count + 1)]
    choice = [[-1] * m for _ in range(count + 1)]
    for j in range(m):
        cost[1][j] = prefix[j + 1] * candidates[j]
    for t in range(2, count + 1):
        for j in range(m):
            cost[t][j], choice[t][j] = cost[t - 1][j], choice[t - 1][j]
            for i in range(j):
                value = cost[t - 1][i] + (prefix[j + 1] - prefix[i + 1]) * candidates[j]
                if value < cost[t][j]:
                    cost[t][j], choice[t][j] = value, i
    # Rebuild the chosen buckets ending at the largest candidate.
    buckets, t, j = [], count, m - 1
    while j >= 0 and t >= 1:
        buckets.append(candidates[j])
        j = choice[t][j]
        t -= 1
    return sorted(set(buckets))


def padding_efficiency(lengths: list[int], batch_size: int, buckets: list[int] | None, seed: int = 0) -> float:
    """Real tokens / computed tokens for shuffled batches padded to `buckets` (None: to each batch's longest
    row). Padding-free batches are 1.0."""
    real = padded = 0
    for rows in shuffled_batches(lengths, batch_size, seed=seed):
        longest = max(rows)
        width = buckets[bisect.bisect_left(buckets, longest)] if buckets else longest
        real += sum(rows)
        padded += width * len(rows)
    return real / padded
