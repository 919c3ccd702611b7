"""User text in tables shown on a page: every cell, index label and column name, one rule.

Streamlit's static tables (``st.table``) render each cell, index label and header as Markdown,
so a study named ``[click](http://…)`` would become a live link, ``![i](…)`` an image the
browser fetches, ``:red[x]`` styled text. ``markdown_frame`` passes every text of a frame
through :func:`markdown_text`: text made only of characters that cannot start any Markdown,
HTML, autolink or Streamlit directive (letters, digits, spaces and the punctuation of numbers
and intervals) is kept as it is, so that formatted numbers (``−0.12``, ``[0.10, 0.31]``,
``< .001``) and plain names read unchanged; anything else is escaped by
:func:`alliance_core.formatting.escape_markdown` and so shows as its literal characters.
"""

from __future__ import annotations

import re

import pandas as pd

from alliance_core.formatting import escape_markdown

# Characters that on their own start no Markdown construct. Letters exclude "_" (emphasis);
# ":" (schemes, directives, icons), "@" (e-mail autolinks), "!", "*", "`", "~", "$", "\",
# "#", "|", "&", "{", "}" and "^" are left out.
_INERT_CHARACTERS = re.compile(r"[^\W_]|[ .,%+\-−–=<>\[\]()/'·×±²]")
# Constructs the allowed characters can still make.
_LIVE_PATTERNS = re.compile(
    r"\]\s*[(\[]"  # a link or reference after a bracket
    r"|<\s*[A-Za-z/!?]"  # an HTML tag or an autolink
    r"|www\."  # a GFM extended autolink
    r"|^\s*(?:[-+=]|\d+[.)])(?:\s|$)"  # a list item or a setext underline
    r"|^\s*>",  # a block quote
    re.IGNORECASE,
)


def is_inert(text: str) -> bool:
    """Whether ``text`` renders as itself in Markdown (see the module docstring)."""
    if not all(_INERT_CHARACTERS.fullmatch(ch) for ch in text):
        return False
    return _LIVE_PATTERNS.search(text) is None


def markdown_text(value: object) -> object:
    """A table cell for Markdown: text shown literally (escaped unless inert); other values,
    numbers included, unchanged."""
    if not isinstance(value, str):
        return value
    return value if is_inert(value) else escape_markdown(value)


def _labels(index: pd.Index) -> pd.Index:
    names = [markdown_text(name) for name in index.names]
    if isinstance(index, pd.MultiIndex):
        tuples = [tuple(markdown_text(part) for part in label) for label in index]
        return pd.MultiIndex.from_tuples(tuples, names=names)
    return pd.Index([markdown_text(label) for label in index], name=names[0], dtype=object)


def markdown_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` for ``st.table``: text cells, index labels and names and column
    names through :func:`markdown_text`."""
    out = frame.copy()
    for position in range(out.shape[1]):
        column = out.iloc[:, position]
        if column.map(lambda value: isinstance(value, str)).any():
            out.isetitem(position, column.astype(object).map(markdown_text))
    out.index = _labels(out.index)
    out.columns = _labels(out.columns)
    return out
