"""Level hygiene: spellings that differ only in case, spaces or Unicode form are one level
under the most frequent spelling, named, reversible; near-duplicates are pointed out only."""

from __future__ import annotations

import unicodedata

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from alliance_core.data.uploads import level_key, review_levels

FAST = settings(derandomize=True, deadline=None, max_examples=60, database=None)

WORDS = ["patient", "therapist", "observer", "rct", "naturalistic", "café", "ﬁrst", "self report"]


@st.composite
def spelled(draw, word: str) -> str:
    """``word`` as someone might type it: any case, doubled inner spaces, another Unicode form."""
    text = "".join(c.upper() if draw(st.booleans()) else c for c in word)
    if " " in text and draw(st.booleans()):
        text = text.replace(" ", "  ")
    form = draw(st.sampled_from(["NFC", "NFD", "NFKC", "NFKD"]))
    return unicodedata.normalize(form, text)


@st.composite
def column(draw):
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4, unique=True))
    cells = draw(
        st.lists(
            st.one_of(
                st.sampled_from(words).flatmap(spelled),
                st.none(),
            ),
            min_size=2,
            max_size=30,
        )
    )
    return cells


def the_truth(cells):
    """The level of each cell, independently of the code: the word it was typed from."""
    by_letters = {}
    for word in WORDS:
        folded = unicodedata.normalize("NFKD", word).casefold().replace("ﬁ", "fi")
        by_letters[" ".join(folded.split())] = word
    truth = []
    for cell in cells:
        if cell is None:
            truth.append(None)
            continue
        folded = unicodedata.normalize("NFKD", cell).casefold().replace("ﬁ", "fi")
        truth.append(by_letters[" ".join(folded.split())])
    return truth


@FAST
@given(cells=column())
def test_one_level_per_word_under_its_most_frequent_spelling(cells):
    frame = pd.DataFrame({"rater": pd.Series(cells, dtype=object), "r": np.arange(len(cells))})
    before = frame.copy()
    review = review_levels(frame, ["rater"])
    pd.testing.assert_frame_equal(frame, before)  # the uploaded table is never changed
    merged = review.frame["rater"].tolist()
    truth = the_truth(cells)
    # Same word ↔ same level, and missing cells stay missing.
    assert [m is None for m in merged] == [t is None for t in truth]
    pairs = {(t, m) for t, m in zip(truth, merged, strict=True) if t is not None}
    assert len(pairs) == len({t for t, _ in pairs}) == len({m for _, m in pairs})
    # The level is shown as its most frequent spelling in the file.
    for word, shown in pairs:
        spellings = [c for c, t in zip(cells, truth, strict=True) if t == word]
        counts = {s: spellings.count(s) for s in spellings}
        assert counts[shown] == max(counts.values())
        assert shown == next(s for s in spellings if counts[s] == max(counts.values()))
    # Every row whose spelling changed is named by a merge.
    changed = sum(c != m for c, m in zip(cells, merged, strict=True))
    assert changed == sum(merge.rows_changed for merge in review.merges)


@FAST
@given(cells=column())
def test_keeping_every_merge_apart_gives_the_spellings_back(cells):
    frame = pd.DataFrame({"rater": pd.Series(cells, dtype=object)})
    merges = review_levels(frame, ["rater"]).merges
    kept = review_levels(frame, ["rater"], kept_apart=[m.ident for m in merges])
    assert kept.frame["rater"].tolist() == cells
    assert not kept.merges
    assert [m.ident for m in kept.kept_apart] == [m.ident for m in merges]


@FAST
@given(text=st.text(max_size=12))
def test_the_level_key_is_a_fixed_point(text):
    assert level_key(level_key(text)) == level_key(text)


def test_the_issue_example_is_named():
    frame = pd.DataFrame(
        {"rater": ["patient"] * 3 + ["Patient", "PATIENT", "observer"], "r": range(6)}
    )
    review = review_levels(frame, ["rater"])
    assert [m.describe() for m in review.merges] == [
        "In 'rater': 'Patient' and 'PATIENT' read as 'patient' (2 rows)."
    ]
    assert review.frame["rater"].tolist() == ["patient"] * 5 + ["observer"]


def test_near_duplicates_are_pointed_out_not_merged():
    values = ["observer", "observ.", "naturalistic", "naturalistc", "self-report", "self report"]
    frame = pd.DataFrame({"rater": values})
    review = review_levels(frame, ["rater"])
    assert review.frame["rater"].tolist() == values
    assert not review.merges
    pairs = {(n.first, n.second) for n in review.near_duplicates}
    assert pairs == {
        ("observer", "observ."),
        ("naturalistic", "naturalistc"),
        ("self-report", "self report"),
    }


def test_distinct_short_levels_are_not_near_duplicates():
    frame = pd.DataFrame({"design": ["RCT", "CT", "other", "pre-post", "yes", "no"]})
    assert review_levels(frame, ["design"]).near_duplicates == ()


def test_numeric_and_unlisted_columns_are_left_alone():
    frame = pd.DataFrame({"pd": [10, 20, 10], "note": ["A", "a", "A"]})
    review = review_levels(frame, ["pd", "absent"])
    assert review.frame is frame
    assert not review.merges
