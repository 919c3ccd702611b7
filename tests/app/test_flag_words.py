"""Words follow flags on the Forest, Funnel and Sensitivity pages: they show the Overview's
caution for every test the state flags (the same sentences, from the state's ModelFlags), and no
text on them calls a flagged test significant or non-significant.

Two flagged states: a filter leaving three studies (model-based: too few studies for the
moderator test) and the same under CR2 (Satterthwaite df below 4).
"""

from __future__ import annotations

import functools
import re
import urllib.parse

import pytest

import alliance_core as ac
from alliance_core.data.datasets import dataset_info, load_dataset
from alliance_core.formatting import format_coefficient
from tests.app.conftest import exception_messages, new_app
from tests.app.one_story_states import settings_of

THREE_STUDIES = {
    "keep": ["alliance_rater:therapist", "outcome_rater:other", "pd:yes"],
    "model": "2L-agg",
}
STATES = {"three-studies": THREE_STUDIES, "three-studies-CR2": {**THREE_STUDIES, "inf": "CR2"}}
PAGES = ("pages/forest.py", "pages/funnel.py", "pages/sensitivity.py")
VERDICT = re.compile(r"\b(non-?)?significant(ly)?\b", re.IGNORECASE)


def _unescaped(text: str) -> str:
    """Markdown shown as literal text (escape_markdown's backslashes taken off)."""
    return re.sub(r"\\(.)", r"\1", text)


@functools.cache
def _page(state: str, page: str):
    at = new_app()
    at.query_params.update(STATES[state])
    at.run()
    if page != "pages/overview.py":
        at.switch_page(page).run()
    assert not at.exception, exception_messages(at)
    links = [t.value for t in at.sidebar.text if "?" in t.value]
    settings = settings_of(urllib.parse.parse_qs(links[0].split("?", 1)[1]))
    info = dataset_info(settings.dataset)
    current = ac.analysis_state(load_dataset(settings.dataset), info.mapping, settings)
    texts = [
        _unescaped(element.value)
        for kind in (at.markdown, at.caption, at.warning, at.info)
        for element in kind
    ]
    warnings = [_unescaped(w.value) for w in at.warning]
    return current, texts, warnings


def _flagged_tokens(current) -> list[str]:
    """Numbers naming a flagged test: the moderator test's statistic, the flagged coefficients'
    estimates (as the readings print them)."""
    run, flags = current.moderated, current.moderated_flags
    tokens = []
    if run.omnibus is not None and flags.omnibus_caution():
        tokens.append(f"= {run.omnibus[0]:.2f}")
    for term, row in run.inference_table.iterrows():
        if flags.coefficient_caution(term):
            tokens.append(format_coefficient(row["estimate"], row["se"], minimum=3)[0])
    return tokens


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("state", sorted(STATES))
def test_a_flagged_result_is_cautioned_as_on_the_overview_and_never_called_significant(state, page):
    current, texts, warnings = _page(state, page)
    flagged = [item.text for item in current.readings() if item.flagged]
    assert len(flagged) >= 2, current.summary()  # the moderator test and the PTR slope
    _, overview, _ = _page(state, "pages/overview.py")
    for text in flagged:
        assert text in overview  # the Overview's own sentence...
        assert text in warnings, (page, text)  # ...shown as a caution on this page
    tokens = _flagged_tokens(current)
    assert tokens
    for text in texts:
        for sentence in re.split(r"(?<=[.:;])\s+(?=[A-Z])", text):
            if any(token in sentence for token in tokens):
                assert not VERDICT.search(sentence), (page, sentence)


def test_the_cr2_state_is_flagged_for_small_df():
    current, _, _ = _page("three-studies-CR2", "pages/overview.py")
    assert current.moderated_flags.small_df and current.moderated_flags.omnibus_df2 < 4
