"""Figures show user text as text: no live link, image or styled span from a label or level."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

import alliance_core as ac
from alliance_core.figures import forest_figure, ptr_curve_figure
from alliance_core.wording.figure_text import plain_figure, plain_markup

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
