"""User text in Plotly figures shown as text, never as live HTML.

Plotly renders a subset of HTML in every text of a figure (titles, tick labels, legend names,
hover text): ``<a href="…">`` becomes a live link and ``<span style>`` restyles the page.
Study labels, column names and category levels come from uploads, so ``plain_figure`` escapes
every ``<`` that does not open one of the few formatting tags the figure builders themselves
write (line breaks, bold, italics, super/subscripts, the hover box's ``<extra>``). Plotly
splits tags before it decodes entities, so an escaped ``&lt;a&gt;`` is shown as the literal
characters ``<a>``.

Plotly also fills ``%{...}`` templates: in hover and text templates, and in titles, annotations
and legend names from the figure's ``meta`` (``%{meta.provenance.moderators}``). A template
in user text would pull other text (the provenance, unescaped) into the figure, so every
``%{`` outside the builders' own ``hovertemplate``/``texttemplate`` is written ``&#37;{``:
Plotly fills templates before it decodes entities, and then shows a plain ``%{``.
"""

from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go

# Tags without attributes that the builders use; anything else starting with "<" is text.
_NOT_A_FORMATTING_TAG = re.compile(r"<(?!/?(?:br|b|i|em|sup|sub|extra)\s*/?>)", re.IGNORECASE)
_TEMPLATE_START = "%{"
_TEMPLATE_START_AS_TEXT = "&#37;{"
# Properties the figure builders write as templates (never from user text directly: user
# text reaches them through ``hovertext``/``customdata``, which Plotly inserts unexpanded).
TEMPLATE_PROPERTIES = frozenset({"hovertemplate", "texttemplate"})


def plain_markup(text: str) -> str:
    """``text`` with every ``<`` that would open a link, image or styled span escaped."""
    return _NOT_A_FORMATTING_TAG.sub("&lt;", text)


def plain_text(text: str) -> str:
    """``text`` as figure text: no live tag (``plain_markup``) and no ``%{...}`` template."""
    return plain_markup(text).replace(_TEMPLATE_START, _TEMPLATE_START_AS_TEXT)


def _plain(value, key: str = ""):
    if isinstance(value, str):
        return plain_markup(value) if key in TEMPLATE_PROPERTIES else plain_text(value)
    if isinstance(value, dict):
        return {name: _plain(item, name) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(item, key) for item in value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "OUS":
        cleaned = [_plain(item, key) for item in value.ravel()]
        return np.array(cleaned, dtype=object).reshape(value.shape)
    return value


def _changed(props: dict) -> dict:
    changes = {}
    for key, value in props.items():
        cleaned = _plain(value, key)
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "OUS" and not np.array_equal(cleaned, value):
                changes[key] = cleaned
        elif cleaned != value:
            changes[key] = cleaned
    return changes


def plain_figure(fig: go.Figure) -> go.Figure:
    """``fig`` with the HTML in its texts escaped (in place; returns ``fig``). Idempotent."""
    for trace in fig.data:
        changes = _changed(trace.to_plotly_json())
        if changes:
            trace.update(changes)
    layout = fig.layout.to_plotly_json()
    layout.pop("template", None)  # colours and fonts only; large to walk
    changes = _changed(layout)
    if changes:
        fig.update_layout(changes)
    return fig
