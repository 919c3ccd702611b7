"""Tables shown on pages: every text goes through one escaping path (alliance_core.wording.table_text),
and no page calls st.table or st.dataframe around it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd
import pytest

from alliance_core.formatting import escape_markdown
from alliance_core.wording.table_text import is_inert, markdown_frame, markdown_text

PAGES = Path(__file__).resolve().parents[2] / "pages"

HOSTILE = [
    "[click](http://evil.invalid/md)",
    "![i](http://evil.invalid/img.png)",
    "http://evil.invalid/bare",
    "<https://evil.invalid/auto>",
    "www.evil.invalid",
    ":red[RED]",
    "**bold**",
    "_it_",
    '=HYPERLINK("http://evil.invalid","st")',
    '<a href="http://evil.invalid/a">x</a>',
    r"$\href{http://evil.invalid}{x}$",
    "a@evil.invalid",
    "- list",
    "1. list",
    "> quote",
    "# heading",
    "`code`",
    "[ref][1]",
]
PLAIN = ["Smith 2004", "0.25", "−0.12", "[0.10, 0.31]", "< .001", "log PTR 95% CI", "k", "ρ = 0.6"]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_escaped(text):
    assert not is_inert(text)
    shown = markdown_text(text)
    assert shown == escape_markdown(text)  # which renders as the literal characters


@pytest.mark.parametrize("text", PLAIN)
def test_plain_text_and_formatted_numbers_are_kept(text):
    assert is_inert(text)
    assert markdown_text(text) == text


def test_every_text_of_a_frame_is_passed_index_columns_and_cells():
    frame = pd.DataFrame({HOSTILE[0]: [HOSTILE[1], "0.25"], "k": [3, 4]}, index=[HOSTILE[2], "x"])
    frame.index.name = HOSTILE[5]
    out = markdown_frame(frame)
    assert list(out.columns) == [escape_markdown(HOSTILE[0]), "k"]
    assert out.index.name == escape_markdown(HOSTILE[5])
    assert list(out.index) == [escape_markdown(HOSTILE[2]), "x"]
    assert out.iloc[:, 0].tolist() == [escape_markdown(HOSTILE[1]), "0.25"]
    assert out["k"].tolist() == [3, 4]  # numbers untouched
    assert frame.columns[0] == HOSTILE[0]  # a copy


def test_no_page_shows_a_table_around_the_escaping_path():
    """st.table and st.dataframe are called in pages/_ui/render.py only (table, dataframe)."""
    direct = []
    for path in PAGES.rglob("*.py"):
        if path.relative_to(PAGES).as_posix() == "_ui/render.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("table", "dataframe"):
                owner = ast.unparse(node.value)
                widget = re.fullmatch(r"st|.*(container|expander|col|tab|every|row).*", owner)
                if owner != "render" and widget:
                    direct.append(f"{path.name}: {owner}.{node.attr}")
    assert direct == []
