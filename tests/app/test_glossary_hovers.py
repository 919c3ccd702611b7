"""Every technical term a page shows has its plain-language definition on hover on that page.

The test walks each page headlessly, reads its visible text (headings, paragraphs, captions,
notices, metrics, table cells and widget labels) and its hovers (every element's ``help``), and
finds the glossary's terms with its own pattern, written here apart from the dashboard's.
"""

from __future__ import annotations

import re

import pytest

from alliance_core.wording.glossary import COLUMN_NAMES, GLOSSARY
from tests.app.conftest import assert_ran_cleanly, new_app

PAGES = [
    "pages/overview.py",
    "pages/data.py",
    "pages/forest.py",
    "pages/funnel.py",
    "pages/moderators.py",
    "pages/sensitivity.py",
    "pages/simulator.py",
    "pages/lesson.py",
    "pages/methods.py",
]
TEXT_ELEMENTS = ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error")
WIDGETS = ("selectbox", "multiselect", "radio", "toggle", "checkbox", "number_input", "button")
CODES = [code for code in COLUMN_NAMES if "_" in code]  # column codes shown as codes


def shown(term: str, text: str) -> bool:
    """Whether ``text`` shows ``term``: as a whole word, symbols exactly, words in any case
    ("r" in "r = 0.29", not in "r²" or "rater"). Markdown escapes are read through."""
    text = text.replace("\\", "")
    case = re.IGNORECASE if re.search(r"[a-z]{3}", term) else 0
    return re.search(rf"(?<![\w'’]){re.escape(term)}(?![\w'’²])", text, case) is not None


def visible_text(at) -> str:
    parts = [str(e.value) for kind in TEXT_ELEMENTS for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    for table in at.table:
        frame = table.value
        parts += [*map(str, frame.columns), *map(str, frame.index)]
        parts += [str(cell) for cell in frame.to_numpy().ravel()]
    parts += [str(w.label) for kind in WIDGETS for w in getattr(at, kind)]
    return "\n".join(parts)


def hovers(at) -> str:
    """Every help text of the page: metrics, widgets, paragraphs, captions, headings."""
    found: list[str] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        help_text = getattr(proto, "help", "") if proto is not None else ""
        if isinstance(help_text, str) and help_text:
            found.append(help_text)
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            for child in children.values():
                walk(child)

    walk(at._tree)
    return "\n".join(found)


def opened(page: str, query: dict[str, str]):
    at = new_app()
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert_ran_cleanly(at)
    at.switch_page(page).run()
    assert_ran_cleanly(at)
    return at


def test_the_finder_tells_a_term_from_a_longer_word():
    assert shown("r", "r = 0.29") and shown("r", "Pooled r") and not shown("r", "r² = 10 %")
    assert not shown("r", "rater") and shown("Meta-regression", "a meta\\-regression")
    assert shown("τ²", "τ² = 0.01") and not shown("PTR", "PTRs")


@pytest.mark.parametrize("query", [{}, {"inf": "CR2"}], ids=["model-based", "CR2"])
@pytest.mark.parametrize("page", PAGES)
def test_every_term_shown_is_defined_on_hover(page, query):
    at = opened(page, query)
    text, hover = visible_text(at), hovers(at)
    terms = [t for t in GLOSSARY if shown(t, text)]
    assert terms  # every page shows some terms (r, PTR, the model line)
    undefined = [t for t in terms if GLOSSARY[t] not in hover]
    undefined += [c for c in CODES if shown(c, text) and COLUMN_NAMES[c] not in hover]
    if page == "pages/methods.py":  # its glossary section shows every definition as text
        undefined = [t for t in undefined if t in GLOSSARY and GLOSSARY[t] not in text]
    assert not undefined, f"{page}: no hover defines {undefined}"
