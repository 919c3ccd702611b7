"""The publication-bias verdict: each test's direction from seeded data whose funnel is known
to lean one way, agreement and disagreement in words, and the caveat said once."""

from __future__ import annotations

import numpy as np
import pandas as pd

import alliance_core as ac
from alliance_core.analyses import bias_tests
from alliance_core.analyses.bias_verdict import (
    BIAS,
    CAVEAT,
    OTHER_WAY,
    UNREADABLE,
    bias_verdict,
    classify,
)


def funnel(seed: int, slope: float, base: float = 0.05, k: int = 120) -> pd.DataFrame:
    """Effects that rise (slope > 0) or fall (slope < 0) with their standard error."""
    rng = np.random.default_rng(seed)
    n = rng.integers(15, 400, k)
    vi = 1.0 / (n - 3)
    yi = base + slope * np.sqrt(vi) + rng.normal(0, np.sqrt(vi))
    return pd.DataFrame({"yi": yi, "vi": vi})


def test_small_studies_with_larger_effects_point_to_bias():
    res = ac.fit(funnel(1, slope=2.5))
    tests = bias_tests.run_bias_tests(res)
    directions = classify(tests)
    assert directions["Egger's test"] == BIAS and directions["Begg's rank test"] == BIAS
    text = bias_verdict(tests, res, ac.selmodel(res), transform="r")
    assert "less precise effect sizes are larger" in text
    assert text.count(CAVEAT) == 1 and text.endswith(CAVEAT)
    assert "The selection model" in text


def test_small_studies_with_smaller_effects_point_the_other_way_and_say_so():
    res = ac.fit(funnel(2, slope=-2.5, base=0.6))
    assert res.beta[0] > 0
    tests = bias_tests.run_bias_tests(res)
    assert classify(tests)["Egger's test"] == OTHER_WAY
    text = bias_verdict(tests, res)
    assert "point the other way" in text or "points the other way" in text
    assert "which publication bias does not produce" in text


def test_a_negative_average_turns_the_expected_direction():
    data = funnel(1, slope=2.5)
    data["yi"] = -data["yi"]
    res = ac.fit(data)
    assert classify(bias_tests.run_bias_tests(res), sign=-1.0)["Egger's test"] == BIAS
    assert "less precise effect sizes are larger" in bias_verdict(
        bias_tests.run_bias_tests(res), res
    )


def test_few_studies_make_every_test_unreadable_even_a_strong_slope():
    """Eight studies with a strong small-study slope: the tests reject, but with fewer than 10
    studies the verdict calls none of them either way."""
    res = ac.fit(funnel(6, slope=6.0, k=8))
    tests = bias_tests.run_bias_tests(res)
    assert tests.egger.pval < 0.05 and tests.rank.pval < 0.05  # not to be called significant
    directions = classify(tests)
    assert directions["Egger's test"] == UNREADABLE == directions["Begg's rank test"]
    # Trim-and-fill's count of missing studies rests on the same eight studies.
    assert directions["trim-and-fill"] == UNREADABLE
    assert tests.trim_fill.caution == "only 8 studies (fewer than 10)"
    text = bias_verdict(tests, res)
    assert (
        "Egger's test, Begg's rank test and trim-and-fill cannot be read here: only 8 studies"
        in text
    )
    assert "point to the pattern" not in text and "find no asymmetry" not in text
    if tests.trim_fill.k0:
        assert "a count that cannot be relied on here" in text
    assert "cannot be relied on here: only 8 studies" in tests.trim_fill.describe()
    assert text.count(CAVEAT) == 1


def test_with_ten_studies_trim_and_fill_is_read_as_before():
    res = ac.fit(funnel(6, slope=6.0, k=10))
    tests = bias_tests.run_bias_tests(res)
    assert tests.trim_fill.caution is None
    assert classify(tests)["trim-and-fill"] != UNREADABLE
    assert "cannot be relied on" not in tests.trim_fill.describe()


def test_with_few_studies_the_selection_model_is_called_neither_way():
    res = ac.fit(funnel(3, slope=0.0, base=0.3, k=9))
    tests = bias_tests.run_bias_tests(res)
    selection = ac.selmodel(res)
    assert selection.LRT_pval > 0.05  # would read "finds no clear selection"
    text = bias_verdict(tests, res, selection)
    assert "The selection model finds" not in text
    assert "whether it finds selection cannot be read here: only 9 studies" in text
    # With enough studies the sentence still reads the test.
    many = ac.fit(funnel(3, slope=0.0, base=0.3, k=60))
    text = bias_verdict(bias_tests.run_bias_tests(many), many, ac.selmodel(many))
    assert "The selection model finds" in text


def test_trim_and_fill_on_study_aggregates_counts_studies_and_a_tiny_move_is_said_so():
    # The default data: three-level, so trim-and-fill runs on one aggregated effect per study.
    data = ac.escalc(ac.load_dataset(ac.DEFAULT_DATASET))
    res = ac.fit(data, cluster="study")
    tests = bias_tests.run_bias_tests(res)
    t = tests.trim_fill
    assert t.aggregated and t.k0 > 0 and t.original.k == res.n_studies
    text = bias_verdict(tests, res, transform="r")
    assert f"adds {t.k0} studies (aggregated effects)" in text
    assert "effect size" not in text.split("Trim-and-fill adds", 1)[1].split(".")[0]
    before, after = (f"{np.tanh(v):.2f}" for v in (t.original.beta[0], t.estimate))
    if before == after:  # as in the reviewer's case: .29 to .29
        assert "barely moves the average (from r = ." in text
        assert f"to r = .{before[2:]} " not in text
    described = t.describe(transform="r")
    assert f"estimated {t.k0} missing studies" in described
    assert "effect size" not in described.split("(L0")[0]


def test_two_level_trim_and_fill_still_counts_effect_sizes():
    res = ac.fit(funnel(1, slope=2.5))
    t = bias_tests.run_bias_tests(res).trim_fill
    assert not t.aggregated
    assert t.units(2) == "effect sizes" and t.units(1) == "effect size"
    assert "effect size" in t.describe()


def test_equal_averages_get_a_third_decimal():
    # The default data, whose selection model and unadjusted average agree at two decimals.
    data = ac.escalc(ac.load_dataset(ac.DEFAULT_DATASET))
    res = ac.fit(data, cluster="study")
    sel = ac.selmodel(res, steps=(0.025,), cluster=res.cluster)
    values = (sel.estimate, sel.unadjusted.beta[0])
    adjusted, plain = (f"{np.tanh(v):.2f}" for v in values)
    assert adjusted == plain
    text = bias_verdict(bias_tests.run_bias_tests(res), res, sel, transform="r")
    shown = [f"{np.tanh(v):.3f}"[1:] for v in values]
    assert f"puts the average at r = {shown[0]} against r = {shown[1]} without" in text
