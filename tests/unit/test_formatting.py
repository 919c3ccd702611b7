"""The one number and text formatter: APA p-values, decimals from the SE, escaped user text."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alliance_core.formatting import (
    MINUS,
    WORD_JOINER,
    decimals_for,
    escape_markdown,
    format_coefficient,
    format_number,
    format_p,
    format_p_cell,
)


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0.0214, "p = .021"),
        (0.917, "p = .917"),
        (0.0004, "p < .001"),
        (0.0, "p < .001"),
        (0.001, "p = .001"),
        (0.9996, "p > .999"),
        (1.0, "p > .999"),
        (float("nan"), "p = NA"),
        (None, "p = NA"),
    ],
)
def test_apa_p_values(p, expected):
    assert format_p(p) == expected


def test_p_cells_have_no_symbol():
    assert format_p_cell(0.0214) == ".021"
    assert format_p_cell(1e-9) == "< .001"
    assert format_p(0.5, symbol=False) == "= .500"


@given(st.floats(min_value=0.0, max_value=1.0))
def test_p_is_never_zero_or_leading_zero(p):
    text = format_p(p)
    assert ".000" not in text
    assert "0." not in text


def test_numbers_use_a_typographic_minus_and_no_negative_zero():
    assert format_number(-0.4321, 2) == f"{MINUS}0.43"
    assert format_number(-0.0001, 2) == "0.00"
    assert format_number(float("inf")) == "NA"


@pytest.mark.parametrize(
    ("se", "digits"), [(0.05, 3), (0.0123, 3), (0.001, 4), (0.00093, 5), (2.5, 2), (0, 2)]
)
def test_decimals_show_two_significant_digits_of_the_se(se, digits):
    assert decimals_for(se) == digits


def test_raw_ptr_slope_is_not_rounded_away():
    # A slope of -0.0021 with SE 0.0009 needs five decimals for two significant SE digits.
    assert format_coefficient(-0.0021, 0.0009) == (f"{MINUS}0.00210", "0.00090")


@pytest.mark.parametrize(
    "payload",
    [
        "[Log in again here](https://example.org/login)",
        "![](http://example.org/x.png)",
        "<img src=x onerror=alert(1)>",
        ":red[alarm] :material/warning:",
        "$x^2$ **bold** _it_ `code`",
        "http://example.org www.example.org",
        "line\n# Heading\n- item",
    ],
)
def test_escaped_markdown_has_no_unescaped_punctuation(payload):
    escaped = escape_markdown(payload)
    assert "\n" not in escaped
    # Every punctuation character is preceded by a backslash that is not itself escaped.
    i = 0
    while i < len(escaped):
        ch = escaped[i]
        if ch == "\\":
            assert escaped[i + 1] in string.punctuation
            i += 2
            continue
        assert ch not in string.punctuation, (payload, escaped, i)
        i += 1


@given(st.text(max_size=50))
def test_escaping_keeps_the_characters(text):
    # Removing the escapes gives back the text (with line breaks as spaces).
    escaped = escape_markdown(text)
    unescaped = []
    i = 0
    while i < len(escaped):
        if escaped[i] == "\\":
            i += 1
        unescaped.append(escaped[i])
        i += 1
    flat = "".join(" " if c in "\r\n\t\v\f\u2028\u2029" else c for c in text)
    shown = "".join(unescaped).replace(WORD_JOINER, "")
    assert shown.split() == flat.replace(WORD_JOINER, "").split()


@pytest.mark.parametrize(
    "text",
    [
        "http://evil.example",
        "HTTPS://evil.example/x",
        "www.evil.example",
        "ask@evil.example",
        "mailto:ask@evil.example",
        "see ftp://evil.example",
    ],
)
def test_bare_urls_and_addresses_cannot_become_autolinks(text):
    # GFM's autolink-literal patterns, applied to the text after escapes are resolved.
    resolved = re.sub(r"\\(.)", r"\1", escape_markdown(text))
    assert not re.search(r"(https?|ftp)://|www\.|[-.\w+]@", resolved, re.IGNORECASE)
    assert resolved.replace(WORD_JOINER, "") == text
