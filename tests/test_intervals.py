"""The evaluation's 95% intervals: a bootstrap over examples that brackets the point value and narrows with n."""

from secml_recipes.evaluation.intervals import bootstrap_intervals


def _rate(outcomes):
    return lambda idx: {"rate": sum(outcomes[i] for i in idx) / len(idx), "examples": len(idx), "undefined": None}


def test_the_interval_brackets_the_rate_and_narrows_with_more_examples():
    few = [1, 0, 1, 1, 0, 1, 0, 1]
    many = few * 8
    small, large = (
        bootstrap_intervals(_rate(few), len(few))["rate"],
        bootstrap_intervals(_rate(many), len(many))["rate"],
    )
    assert small[0] < 5 / 8 < small[1] and large[0] < 5 / 8 < large[1]
    assert large[1] - large[0] < (small[1] - small[0]) * 0.6  # ~1/sqrt(8) narrower, with bootstrap noise
    assert 0.2 < small[0] < 0.4 and 0.85 < small[1] <= 1.0  # binomial sd of 5/8 at n=8 is 0.17


def test_a_certain_outcome_has_a_point_interval_and_undefined_metrics_none():
    intervals = bootstrap_intervals(_rate([1] * 6), 6)
    assert intervals["rate"] == [1.0, 1.0] and "undefined" not in intervals
    assert bootstrap_intervals(_rate([]), 0) == {}
