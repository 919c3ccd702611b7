"""Figures show user text as text: no live link, image or styled span from a label or level."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

import alliance_core as ac
from alliance_core.figures import forest_figure, ptr_curve_figure
from alliance_core.handover.provenance import Provenance
from alliance_core.wording.figure_text import plain_figure, plain_markup
from tests.unit.reproduce_states import STATES, analysis_of

LINK = '<a href="https://evil.example/login">Log in again</a>'
IMAGE = '<img src="http://evil.example/x.png" onerror="alert(1)">'
STYLE = '<span style="font-size:80px">big</span>'
LIVE = re.compile(r"<(a|img|span)\b", re.IGNORECASE)


def strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list | tuple | np.ndarray):
        return [s for item in value for s in strings(item)]
    return []


def figure_strings(fig: go.Figure) -> list[str]:
    return strings(fig.to_plotly_json())


@pytest.mark.parametrize("payload", [LINK, IMAGE, STYLE, "<A HREF=x>", "<a\thref=x>"])
def test_tags_that_are_not_formatting_are_escaped(payload):
    assert not LIVE.search(plain_markup(payload))
    assert plain_markup(payload).replace("&lt;", "<") == payload


@pytest.mark.parametrize(
    "markup", ["a<br>b", "<b>x</b>", "<i>y</i>", "x<sup>2</sup>", "<extra></extra>"]
)
def test_the_builders_own_formatting_tags_stay(markup):
    assert plain_markup(markup) == markup


def test_plain_markup_is_idempotent():
    once = plain_markup(LINK)
    assert plain_markup(once) == once


@pytest.fixture
def hostile_result():
    rng = np.random.default_rng(7)
    k = 12
    data = pd.DataFrame(
        {
            "yi": rng.normal(0.3, 0.1, k),
            "vi": rng.uniform(0.01, 0.05, k),
            "label": [LINK, IMAGE, STYLE] * 4,
            "rater": [IMAGE, LINK] * 6,
            "PTR": rng.uniform(1, 20, k),
        }
    )
    return ac.fit(data, moderators=["PTR", "rater"])


def test_forest_and_ptr_figures_with_hostile_labels_and_levels_are_plain(hostile_result):
    forest = forest_figure(hostile_result, transform=None, columns={"label": "label"})
    curve = ptr_curve_figure(hostile_result, ptr_column="PTR", color_by="rater")
    # Without the escaping the builders pass the labels through as live HTML ...
    assert any(LIVE.search(s) for s in figure_strings(forest) + figure_strings(curve))
    for fig in (forest, curve):
        plain_figure(fig)
        assert not [s for s in figure_strings(fig) if LIVE.search(s)]
    # ... and after it the labels are still there, as text.
    assert any("&lt;a href" in s for s in figure_strings(forest))
    assert any("&lt;img" in s for s in figure_strings(curve))


# -- templates: user text is never filled in as a Plotly template ----------------------------
TEMPLATE = "CLICK%{meta.provenance.moderators}"


def test_user_text_templates_are_written_as_text_but_builder_templates_stay():
    fig = go.Figure(
        go.Scatter(
            x=[1],
            y=[2],
            name=TEMPLATE,
            hovertext=[TEMPLATE],
            hovertemplate="%{hovertext}<extra></extra>",
        )
    )
    fig.update_layout(title=TEMPLATE, meta={"provenance": {"moderators": LINK}})
    fig.add_annotation(text=TEMPLATE, x=0, y=0)
    plain_figure(fig)
    assert fig.data[0].hovertemplate == "%{hovertext}<extra></extra>"
    texts = [fig.data[0].name, fig.data[0].hovertext[0], fig.layout.title.text]
    texts.append(fig.layout.annotations[0].text)
    assert texts == ["CLICK&#37;{meta.provenance.moderators}"] * 4
    assert not LIVE.search(fig.layout.meta["provenance"]["moderators"])
    assert plain_figure(fig).to_plotly_json() == fig.to_plotly_json()  # idempotent


def test_provenance_added_after_plain_figure_is_plain_too():
    """Provenance.on_figure puts user text into ``meta`` and a caption after the page escaped
    the figure: the stamped figure holds no live tag and no user template either."""
    run, mapping, _, _ = analysis_of(STATES[0])
    provenance = Provenance.of(run, mapping, dataset=LINK + TEMPLATE, sha256="0" * 64, title=LINK)
    fig = plain_figure(go.Figure(go.Scatter(x=[1], y=[2])))
    fig.add_annotation(text=TEMPLATE)  # as if a builder had missed one
    stamped = provenance.on_figure(fig)
    for text in figure_strings(stamped):
        assert not LIVE.search(text), text
        assert "%{meta" not in text, text
