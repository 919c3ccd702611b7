"""The glossary: every term the dashboard names has a definition, every column code a name."""

from __future__ import annotations

import pytest

from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info
from alliance_core.wording.glossary import (
    COLUMN_NAMES,
    GLOSSARY,
    column_name,
    define,
    glossary_markdown,
    hover,
    terms_in,
    with_definitions,
)
from pages._ui import session

# Terms named on the pages or in the list of jargon without explanation.
TERMS = ("CHE", "CR2", "HTZ", "QM", "QE", "σ²", "τ²", "I²", "PTR", "Satterthwaite df", "ICC", "ρ")


@pytest.mark.parametrize("term", TERMS)
def test_every_term_is_defined_in_plain_words(term):
    text = GLOSSARY[term]
    assert text.endswith(".") and len(text.split()) >= 8
    assert f"**{term}**" in glossary_markdown()


def test_every_moderator_of_the_bundled_data_has_a_display_name():
    for code in dataset_info(DEFAULT_DATASET).mapping.moderators:
        assert column_name(code) != code, code
        assert session.moderator_label(code) == f"{COLUMN_NAMES[code]} ({code})"


def test_an_unknown_column_is_shown_as_it_is():
    assert column_name("my_column") == "my_column"
    assert session.moderator_label("my_column") == "my_column"
    assert session.moderator_label("PTR") == "PTR"


def test_terms_are_found_as_whole_words_through_markdown_escapes():
    text = "r = 0.29 (r² = 8 %), rater; REML \\(log PTR\\); a meta\\-regression; pd_share; ρ = 0.6"
    assert terms_in(text) == ["r", "PTR", "REML", "Meta-regression", "ρ", "pd_share"]
    assert terms_in("The raters agreed on the design.") == []


def test_a_hover_defines_each_term_shown_once_after_the_elements_own_help():
    text = with_definitions("τ² and I², then τ² again", "Own help.", "CR2")
    parts = text.split("\n\n")
    assert parts[0] == "Own help."
    assert parts[1:] == [f"**{t}**: {define(t)}" for t in ("τ²", "I²", "CR2")]
    assert hover("No terms here.") is None and with_definitions("No terms here.") is None
    assert f"{column_name('pd_share')} (a column" in hover("pd_share")
