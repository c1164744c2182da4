"""95% intervals for the evaluation's metrics: a percentile bootstrap over the held-out examples.

The metrics are micro-averages over findings, calls or actions, and those cluster by example (one part lists
many findings, one episode makes many calls), so a binomial interval over findings would be too narrow. The
bootstrap resamples whole examples (parts, episodes) with replacement and rescores each resample with the
task's own scorer, which keeps every metric's definition in one place.
"""

from __future__ import annotations

import random
from collections.abc import Callable

RESAMPLES = 400
LEVEL = 0.95


def bootstrap_intervals(
    score: Callable[[list[int]], dict], n: int, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> dict[str, list[float]]:
    """{metric: [low, high]} for every numeric metric `score(indices)` returns over `n` examples; a metric
    undefined in some resamples gets its interval from the others, one undefined in all gets none."""
    if n == 0:
        return {}
    rng = random.Random(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        picked = [rng.randrange(n) for _ in range(n)]
        for metric, value in score(picked).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                draws.setdefault(metric, []).append(float(value))
    tail = (1 - level) / 2
    out = {}
    for metric, values in draws.items():
        values.sort()
        low = values[int(tail * (len(values) - 1))]
        high = values[int(round((1 - tail) * (len(values) - 1)))]
        out[metric] = [round(low, 4), round(high, 4)]
    return out
