"""Suggested roles with reasons: a study's total patients told from an effect size's n."""

from __future__ import annotations

import pandas as pd

from alliance_core.data.uploads import suggest_roles


def sheet(**columns) -> pd.DataFrame:
    return pd.DataFrame(
        {"Study": ["A", "A", "B", "B", "C"], "r": [0.2, 0.3, 0.1, 0.25, 0.4]} | columns
    )


def test_the_study_total_and_the_effect_size_n_are_told_apart_with_reasons():
    # The sheet: 'N patients' is the study total, 'N (ES)' the correlation's n.
    frame = sheet(**{"N patients": [120, 120, 80, 80, 60], "N (ES)": [120, 95, 80, 77, 60]})
    suggestion = suggest_roles(frame)
    assert suggestion.mapping.n == "N (ES)"
    assert suggestion.mapping.study_patients == "N patients"
    reasons = dict(suggestion.reasons)
    assert "never larger than 'N patients'" in reasons["n"]
    assert "one value per study" in reasons["study_patients"]
    assert reasons["r"] == "'r' is named like a correlation."
    assert suggestion.questions == ()


def test_a_count_that_could_be_either_is_asked_not_guessed():
    frame = sheet(**{"N patients": [120, 120, 80, 80, 60]})
    suggestion = suggest_roles(frame)
    assert suggestion.mapping.n is None and suggestion.mapping.study_patients is None
    (question,) = suggestion.questions
    assert question.startswith("'N patients' has one value per study")


def test_a_count_that_varies_within_a_study_is_the_effect_size_n():
    frame = sheet(**{"N patients": [120, 95, 80, 77, 60]})
    suggestion = suggest_roles(frame)
    assert suggestion.mapping.n == "N patients"
    assert suggestion.questions == ()


def test_a_plain_n_constant_within_studies_stays_n():
    frame = sheet(n=[120, 120, 80, 80, 60])
    suggestion = suggest_roles(frame)
    assert suggestion.mapping.n == "n"
    assert dict(suggestion.reasons)["n"] == "'n' is named like a sample size (one value per study)."
