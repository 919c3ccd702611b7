"""Results that render themselves: the summary text and the notebook HTML hold the result's own
numbers, and user text in them is escaped.

The expected values are the result objects' fields (the numbers themselves are proven against
metafor and clubSandwich by the fixture tests); what is tested here is that the renderings carry
those fields, parsed back from the text and the HTML at their printed precision.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.model.summary import metafor_p

HOSTILE_LEVEL = '<img src=x onerror="alert(1)">&amp;'
HOSTILE_COLUMN = "<script>alert('x')</script>"
# Printed at four decimals: a parsed number is within half a unit of the fourth decimal.
PRINTED = 5.01e-5


def _nested_data(seed: int = 24) -> pd.DataFrame:
    """A seeded nested table: 30 studies, 1-4 effect sizes each, a numeric and a hostile
    categorical moderator (one of its levels and the column name are markup)."""
    rng = np.random.default_rng(seed)
    rows = []
    for study in range(30):
        x = rng.uniform(0, 3)
        u = rng.normal(0, 0.1)
        for es in range(int(rng.integers(1, 5))):
            level = ["patient", "observer", HOSTILE_LEVEL][int(rng.integers(0, 3))]
            n = int(rng.integers(30, 200))
            yi = 0.3 - 0.03 * x + u + rng.normal(0, 0.05) + rng.normal(0, 1 / np.sqrt(n - 3))
            rows.append(
                {
                    "study": study,
                    "es": es,
                    "x": x,
                    HOSTILE_COLUMN: level,
                    "yi": yi,
                    "vi": 1 / (n - 3),
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return _nested_data()


@pytest.fixture(scope="module")
def three_level(data) -> ac.MetaResult:
    return ac.fit(data, moderators=["x", HOSTILE_COLUMN], cluster="study", rho=0.6)


def _close(text: str, value: float, tolerance: float = PRINTED) -> None:
    assert float(text) == pytest.approx(value, abs=tolerance), (text, value)


class _Tables(HTMLParser):
    """The cells of every table and the text of every paragraph of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.paragraphs: list[str] = []
        self._cell: list[str] | None = None
        self._paragraph: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "p":
            self._paragraph = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "p":
            self.paragraphs.append("".join(self._paragraph))
            self._paragraph = None

    def handle_data(self, data):
        for sink in (self._cell, self._paragraph):
            if sink is not None:
                sink.append(data)


def _parse(fragment: str) -> _Tables:
    parser = _Tables()
    parser.feed(fragment)
    parser.close()
    return parser


def _coefficients_match(rows: list[list[str]], table: pd.DataFrame, columns: list[str]) -> None:
    assert [row[0] for row in rows] == list(table.index)
    for row, (_, expected) in zip(rows, table.iterrows(), strict=True):
        for cell, column in zip(row[1:], columns, strict=True):
            if column == "pval":
                assert cell == metafor_p(expected[column])
            elif column == "df":
                _close(cell, expected[column], 0.00501)
            else:
                _close(cell, expected[column])


# -- the plain-text summary holds the fields --------------------------------------------------
def test_text_summary_of_a_three_level_fit_holds_its_fields(three_level):
    text = three_level.summary()
    header = re.search(r"\(k = (\d+), studies = (\d+); method: (\w+)\)", text)
    assert header.groups() == (str(three_level.k), str(three_level.n_studies), "REML")
    for name, value in three_level.sigma2.items():
        printed = re.search(rf"sigma\^2 \({name}\s*\) = ([\d.]+)", text).group(1)
        _close(printed, value, 5.01e-7)
    qe = re.search(r"QE\(df = (\d+)\) = ([\d.]+), p = (\S+)", text)
    assert int(qe.group(1)) == three_level.QE_df
    _close(qe.group(2), three_level.QE)
    assert qe.group(3) == metafor_p(three_level.QE_pval)
    qm = re.search(r"QM\(df = (\d+)\) = ([\d.]+), p = (\S+)", text)
    assert int(qm.group(1)) == three_level.QM_df
    _close(qm.group(2), three_level.QM)
    # The coefficient table: one line per coefficient, estimate, se, zval, pval, ci_lb, ci_ub.
    for term, row in three_level.coefficients.iterrows():
        line = next(line for line in text.splitlines() if line.startswith(term + " "))
        numbers = line[len(term) :].split()
        for printed, column in zip(numbers, row.index, strict=True):
            _close(printed, row[column])


def test_text_summary_of_a_two_level_fit_holds_tau2(data):
    res = ac.fit(data.groupby("study").head(1), moderators=["x"], test="knha")
    text = res.summary()
    _close(re.search(r"tau\^2 = ([\d.]+)", text).group(1), res.tau2, 5.01e-7)
    f_test = re.search(r"F\(df1 = (\d+), df2 = (\d+)\) = ([\d.]+)", text)
    assert (int(f_test.group(1)), int(f_test.group(2))) == (res.QM_df, res.QM_df2)
    _close(f_test.group(3), res.QM)


def test_text_summaries_of_robust_and_comparison_hold_their_fields(data, three_level):
    rob = three_level.robust(method="CR2")
    text = rob.summary()
    assert f"clusters: {rob.n_clusters}" in text
    htz = re.search(r"F\(df1 = (\d+), df2 = ([\d.]+)\) = ([\d.]+)", text)
    assert int(htz.group(1)) == rob.QM_df[0]
    _close(htz.group(2), rob.QM_df[1], 0.00501)
    _close(htz.group(3), rob.QM)
    reduced = ac.fit(data, moderators=["x", HOSTILE_COLUMN], cluster="study", rho=0.6,
                     fix_sigma2={"es": 0})  # fmt: skip
    lrt = ac.compare(three_level, reduced)
    last = re.search(r"LRT = ([\d.]+) on (\d+) df", lrt.summary())
    _close(last.group(1), lrt.LRT)
    assert int(last.group(2)) == lrt.df


# -- the notebook HTML holds the same fields -------------------------------------------------
def test_html_of_a_three_level_fit_holds_its_fields(three_level):
    parsed = _parse(three_level._repr_html_())
    variance, coefficients = parsed.tables
    for row, (name, value) in zip(variance[1:], three_level.sigma2.items(), strict=False):
        assert name in row[0]
        _close(row[1], value)
        _close(row[3], three_level.I2_levels[name], 0.00501)
    _close(variance[-1][3], three_level.I2, 0.00501)
    assert coefficients[0][1:] == ["estimate", "se", "zval", "pval", "ci.lb", "ci.ub"]
    _coefficients_match(
        coefficients[1:],
        three_level.coefficients,
        ["estimate", "se", "statistic", "pval", "ci_lb", "ci_ub"],
    )
    qe = next(p for p in parsed.paragraphs if "heterogeneity" in p)
    assert f"QE(df = {three_level.QE_df})" in qe
    _close(re.search(r"\) = ([\d.]+)", qe).group(1), three_level.QE)
    assert "rho = 0.6" in " ".join(parsed.paragraphs)


def test_html_of_robust_and_comparison_hold_their_fields(data, three_level):
    rob = three_level.robust(method="CR2")
    parsed = _parse(rob._repr_html_())
    (coefficients,) = parsed.tables
    _coefficients_match(
        coefficients[1:],
        rob.coefficients,
        ["estimate", "se", "statistic", "df", "pval", "ci_lb", "ci_ub"],
    )
    reduced = ac.fit(data, moderators=["x", HOSTILE_COLUMN], cluster="study", rho=0.6,
                     fix_sigma2={"es": 0})  # fmt: skip
    lrt = ac.compare(three_level, reduced)
    (table,) = _parse(lrt._repr_html_()).tables
    full_row, reduced_row = table[1], table[2]
    assert int(full_row[1]) == lrt.full.parameters
    assert int(reduced_row[1]) == lrt.reduced.parameters
    _close(full_row[5], lrt.full.loglik)
    _close(reduced_row[6], lrt.LRT)
    assert reduced_row[7] == metafor_p(lrt.pval)


def test_html_escapes_hostile_coefficient_and_level_names(three_level):
    fragment = three_level._repr_html_()
    assert "<script" not in fragment and "<img" not in fragment
    hostile_terms = [term for term in three_level.coefficients.index if "<" in term]
    assert hostile_terms  # the hostile level made its way into a coefficient name
    for term in hostile_terms:
        assert html.escape(term, quote=True) in fragment
        # Parsed back, the cell shows exactly the user's characters.
        assert term in [row[0] for row in _parse(fragment).tables[1]]
    robust_fragment = three_level.robust(method="CR2")._repr_html_()
    assert "<script" not in robust_fragment and "<img" not in robust_fragment


def test_html_escapes_a_hostile_cluster_column(data):
    hostile = data.rename(columns={"study": '<b onmouseover="x">study</b>'})
    res = ac.fit(hostile, moderators=["x"], cluster='<b onmouseover="x">study</b>')
    fragment = res.robust(method="CR1")._repr_html_()
    assert "<b onmouseover" not in fragment
    assert html.escape('<b onmouseover="x">study</b>', quote=True) in fragment


def test_metafor_p_never_prints_zero():
    assert metafor_p(0.0) == "<.0001"
    assert metafor_p(0.00012) == "0.0001"
    assert metafor_p(float("nan")) == "NA"
