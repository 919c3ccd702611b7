"""No page shows a raw float: every number on screen has at most four decimals.

Numbers reach the screen through alliance_core.formatting (APA p, fixed decimals); a raw float
(``0.24391204788606752``, as Streamlit's "magic" once wrote under every Simulator preset) has
many more. Every page is run on the default state and on a few others, and every text element
(titles, Markdown, captions, alerts, metric values, labels, help texts) and every text cell of a
table is searched. Numeric table cells are left to the table's own display format.

One exception is the formatter's own rule (``formatting.decimals_for``): a small coefficient gets
the decimals its standard error needs for two significant digits, so a raw-PTR slope reads
−0.00233 (SE 0.00060). A number with more than four decimals passes only in that shape: at
least two zeros after the point and at most three significant digits.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from alliance_core.teaching.simulator_view import PRESET_CODES
from tests.app.conftest import assert_ran_cleanly, new_app, page_paths

DECIMALS = re.compile(r"\d\.(\d+)")
TEXT_ATTRIBUTES = ("value", "label", "help", "body")


def leaves(node):
    children = getattr(node, "children", None)
    if children:
        for child in children.values() if isinstance(children, dict) else children:
            yield from leaves(child)
    else:
        yield node


def shown_texts(at: AppTest) -> list[str]:
    texts: list[str] = []
    for node in leaves(at._tree):
        for attribute in TEXT_ATTRIBUTES:
            try:
                value = getattr(node, attribute)
            except Exception:  # noqa: BLE001  (some elements have no value until used)
                continue
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, pd.DataFrame):
                cells = (
                    value.select_dtypes(include=["object", "string"]).astype(str).to_numpy().ravel()
                )
                texts.extend([*map(str, value.columns), *cells])
    return texts


def is_raw(decimals: str) -> bool:
    """More than four decimals, unless it is a small number in the formatter's SE shape."""
    if len(decimals) <= 4:
        return False
    significant = decimals.lstrip("0")
    return not (len(decimals) - len(significant) >= 2 and len(significant) <= 3)


def long_numbers(at: AppTest) -> list[str]:
    return [
        text
        for text in shown_texts(at)
        if any(is_raw(match.group(1)) for match in DECIMALS.finditer(text))
    ]


def opened(page: str, query: dict[str, str] | None = None) -> AppTest:
    at = new_app()
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert_ran_cleanly(at)
    at.switch_page(page).run()
    assert_ran_cleanly(at)
    return at


@pytest.mark.parametrize(
    ("decimals", "raw"),
    [
        ("24391204788606752", True),
        ("12345", True),
        ("3", False),
        ("1234", False),
        ("00233", False),
        ("000123", False),
        ("001234", True),
    ],
)
def test_what_counts_as_raw(decimals, raw):
    assert is_raw(decimals) is raw


def test_the_check_finds_a_raw_float():
    at = AppTest.from_string("import streamlit as st\nst.write(0.24391204788606752)")
    at.run()
    assert long_numbers(at)


@pytest.mark.parametrize("page", page_paths())
def test_no_page_shows_a_number_with_more_than_four_decimals(page):
    at = opened(page)
    assert shown_texts(at), "nothing was collected from the page"
    assert long_numbers(at) == []


@pytest.mark.parametrize("code", list(PRESET_CODES))
def test_no_simulator_preset_shows_a_raw_float(code):
    assert long_numbers(opened("pages/simulator.py", {"sim": code})) == []


@pytest.mark.parametrize(
    ("page", "query"),
    [
        ("pages/overview.py", {"inf": "CR2"}),
        ("pages/moderators.py", {"ptr": "raw"}),
        ("pages/overview.py", {"model": "2L", "est": "DL", "test": "t"}),
    ],
)
def test_other_states_show_no_raw_float(page, query):
    assert long_numbers(opened(page, query)) == []
