"""The binomial effect size display and r² in words (Rosenthal & Rubin, 1982): closed forms."""

from __future__ import annotations

import pytest

from alliance_core.errors import AnalysisError
from alliance_core.wording.common_language import besd, r_in_brief, r_in_words


@pytest.mark.parametrize(
    ("r", "rates"),
    [(0.0, (0.5, 0.5)), (0.28, (0.64, 0.36)), (-0.2, (0.4, 0.6)), (1.0, (1.0, 0.0))],
)
def test_besd_is_half_plus_and_minus_half_r(r, rates):
    assert besd(r) == pytest.approx(rates)


def test_the_sentence_gives_the_rates_and_r_squared():
    text = r_in_words(0.28)
    # 0.5 ± 0.14 and r² = 0.0784
    assert "64 % of patients" in text and "against 36 %" in text
    assert "r² = 0.08" in text and "accounts for 8 %" in text


@pytest.mark.parametrize("r", [1.5, -1.01, float("nan")])
def test_a_number_that_is_no_correlation_is_refused(r):
    with pytest.raises(AnalysisError):
        besd(r)


def test_the_brief_phrase_gives_the_same_numbers():
    # r = 0.3: 0.5 ± 0.15, r² = 0.09
    assert (
        r_in_brief(0.3)
        == "r = 0.30: as if 65 % vs 35 % improved (BESD), r² = 9 % of outcome differences"
    )
