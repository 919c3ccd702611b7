"""Words follow flags on the Moderators page beyond the coefficient table: the PTR readout
("How much does the correlation change?"), its table and its CR2 caption, and the marginal
means. Expectations come from the state the page's share link describes (its ModelFlags, its
robust fit), not from copies of the page's text."""

from __future__ import annotations

import functools
import re
import urllib.parse

import pytest

import alliance_core as ac
from alliance_core.data.datasets import dataset_info, load_dataset
from alliance_core.model.robust import MIN_RELIABLE_DF
from pages._ui.tables import FLAG_MARK
from tests.app.conftest import exception_messages, new_app, unescaped
from tests.app.one_story_states import settings_of

EIGHT_STUDIES = "page=moderators&keep=alliance_measure:CALPAS&keep=design:RCT"
EITHER_WAY = re.compile(r"compatible with no|no difference|\b(non-?)?significant", re.IGNORECASE)


@functools.cache
def _page(query: str):
    at = new_app()
    at.query_params.update(urllib.parse.parse_qs(query))
    at.run()
    assert not at.exception, exception_messages(at)
    settings = settings_of(urllib.parse.parse_qs(query))
    info = dataset_info(settings.dataset)
    current = ac.analysis_state(load_dataset(settings.dataset), info.mapping, settings)
    texts = [unescaped(e.value) for kind in (at.markdown, at.caption) for e in kind]
    return current, texts, [t.value for t in at.table]


@pytest.mark.parametrize("query", [EIGHT_STUDIES, EIGHT_STUDIES + "&inf=CR2"])
def test_a_flagged_ptr_change_is_read_neither_way(query):
    current, texts, shown = _page(query)
    run = current.moderated
    slope = current.flags_of(run).coefficient_caution(run.ptr_column)
    assert slope
    change = [t for t in texts if "patients per therapist" in t and "predicted" in t]
    assert change, texts
    for text in change:
        assert f"cannot be trusted: {slope}" in text
        assert not EITHER_WAY.search(text), text
    readout = next(t for t in shown if t.index.name == "Profile")
    assert list(readout["Caution"]) == [FLAG_MARK]
    captions = [t for t in texts if "each change in r is a contrast" in t]
    if run.robust is None:
        assert not captions
    else:
        (caption,) = captions
        assert FLAG_MARK in caption and slope in caption


def test_marginal_means_on_few_df_or_one_study_are_marked():
    current, texts, shown = _page("page=moderators&ds=assink2016&mod=deltype&inf=CR2")
    run = current.moderated
    means = run.result.marginal_means("deltype", robust=run.robust).table
    rows = run.result.data
    studies = rows.groupby(rows["deltype"].astype(str))[run.mapping.study].nunique()
    table = next(t for t in shown if "Expected effect" in t.columns)
    marks = {
        unescaped(level): mark for level, mark in zip(table.index, table["Caution"], strict=True)
    }
    for level, row in means.iterrows():
        flagged = studies[str(level)] == 1 or row["df"] < MIN_RELIABLE_DF
        assert (marks[str(level)] == FLAG_MARK) == flagged, (level, row["df"])
        said = [
            t for t in texts if t.startswith(f":material/warning: The expected effect of {level} ")
        ]
        assert bool(said) == flagged


def test_interaction_reading_is_escaped_once():
    _, texts, _ = _page("page=moderators&mod=PTR&mod=alliance_rater&mod=PTR:alliance_rater&inf=CR2")
    reading = next(t for t in texts if "in which each therapist treats more patients" in t)
    # Unescaped once, the reader sees the column name as typed: no backslash left.
    assert "Studies with alliance_rater = patient" in reading
    assert "\\" not in reading
