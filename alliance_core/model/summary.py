"""Compact HTML tables of results for notebooks (Jupyter's ``_repr_html_`` protocol).

A notebook shows ``MetaResult``, ``RobustResult`` and the likelihood-ratio comparison of
``compare`` through these functions: the same numbers as their ``summary()`` text, laid out like
metafor's print method (model and k, variance components, heterogeneity test, moderator test,
coefficients with se, z or t, p and confidence interval), at metafor's four decimals.

Coefficient names and levels come from the user's data (a column called ``<script>``, a level
``a&b``), so every string that reaches the HTML passes through :func:`html.escape`. The module
reads the result objects by their fields only and imports nothing of the model, so the result
classes can call it without an import circle.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

# Inline styles only: a notebook's CSS is not ours to change, and a <style> block would leak
# into the rest of the page.
_TABLE = 'style="border-collapse: collapse; margin: 0.3em 0; font-variant-numeric: tabular-nums"'
_CELL = 'style="padding: 0.1em 0.6em; text-align: right"'
_HEAD = 'style="padding: 0.1em 0.6em; text-align: right; border-bottom: 1px solid #888"'
_NAME = 'style="padding: 0.1em 0.6em; text-align: left"'


def _text(value: object) -> str:
    """User-originated text as HTML that shows exactly those characters."""
    return html.escape(str(value), quote=True)


def _number(value: object, digits: int = 4) -> str:
    """A number at metafor's print precision; "NA" when missing (metafor prints NA)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "NA"
    return f"{number:.{digits}f}" if math.isfinite(number) else "NA"


def _df(value: object) -> str:
    """Degrees of freedom: whole numbers as such, Satterthwaite df with two decimals."""
    number = float(value)  # type: ignore[arg-type]
    return f"{number:.0f}" if number.is_integer() else f"{number:.2f}"


def metafor_p(p: object) -> str:
    """p as metafor's print shows it: four decimals, "<.0001" below that, never 0.0000."""
    try:
        number = float(p)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "NA"
    if not math.isfinite(number):
        return "NA"
    return "<.0001" if number < 1e-4 else f"{number:.4f}"


def _table(header: list[str], rows: list[list[str]], names: bool = True) -> str:
    """An HTML table; ``header`` and ``rows`` hold already-escaped cell text."""
    head = "".join(f"<th {_HEAD}>{cell}</th>" for cell in header)
    body = []
    for row in rows:
        cells = [
            f"<td {_NAME if names and i == 0 else _CELL}>{cell}</td>" for i, cell in enumerate(row)
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table {_TABLE}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _coefficient_rows(table: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    rows = []
    for term, values in table.iterrows():
        cells = [_text(term)]
        for column in columns:
            value = values[column]
            if column == "pval":
                cells.append(metafor_p(value))
            elif column == "df":
                cells.append(_number(value, 2))
            else:
                cells.append(_number(value))
        rows.append(cells)
    return rows


def _paragraph(text: str) -> str:
    return f'<p style="margin: 0.2em 0">{text}</p>'


def meta_result_html(res) -> str:
    """A ``MetaResult`` as a compact HTML table (metafor ``print.rma``'s content)."""
    three_level = res.model == "three-level"
    studies = f", studies = {res.n_studies}" if three_level else ""
    kind = "meta-regression" if res.p > 1 else "meta-analytic model"
    parts = [
        _paragraph(
            f"<b>{_text(res.model.capitalize())} {kind}</b> "
            f"(k = {res.k}{studies}; method: {_text(res.method)}; test: {_text(res.test)})"
        )
    ]
    variance_rows: list[list[str]] = []
    if three_level:
        if res.rho is not None:
            parts.append(
                _paragraph(f"Sampling correlation within a study: rho = {res.rho:g} (CHE)")
            )
        fixed = res.fix_sigma2 or {}
        for name, value in res.sigma2.items():
            mark = " (fixed)" if name in fixed else ""
            level_i2 = res.I2_levels.get(name) if res.I2_levels is not None else None
            variance_rows.append(
                [
                    f"sigma^2 ({_text(name)}){mark}",
                    _number(value),
                    _number(np.sqrt(value)),
                    _number(level_i2, 2),
                ]
            )
    elif res.method != "EE":
        variance_rows.append(["tau^2", _number(res.tau2), _number(np.sqrt(res.tau2)), ""])
    variance_rows.append(["I^2 (total, %)", "", "", _number(res.I2, 2)])
    parts.append(_table(["", "estimate", "sqrt", "I^2 (%)"], variance_rows))
    tests = [
        f"Test for {'residual ' if res.p > 1 else ''}heterogeneity: QE(df = {res.QE_df}) = "
        f"{_number(res.QE)}, p = {metafor_p(res.QE_pval)}"
    ]
    if res.QM is not None:
        if res.QM_df2 is not None:
            tests.append(
                f"Test of moderators: F(df1 = {res.QM_df}, df2 = {_df(res.QM_df2)}) = "
                f"{_number(res.QM)}, p = {metafor_p(res.QM_pval)}"
            )
        else:
            tests.append(
                f"Test of moderators: QM(df = {res.QM_df}) = {_number(res.QM)}, "
                f"p = {metafor_p(res.QM_pval)}"
            )
    parts.extend(_paragraph(line) for line in tests)
    statistic = "zval" if res.ddf is None else "tval"
    columns = ["estimate", "se", "statistic", "pval", "ci_lb", "ci_ub"]
    header = ["", "estimate", "se", statistic, "pval", "ci.lb", "ci.ub"]
    parts.append(_table(header, _coefficient_rows(res.coefficients, columns)))
    if len(res.dropped):
        parts.append(_paragraph(f"{len(res.dropped)} row(s) left out because of missing values."))
    parts.extend(_paragraph(_text(note)) for note in res.notes)
    return '<div class="alliance-result">' + "".join(parts) + "</div>"


def robust_result_html(rob) -> str:
    """A ``RobustResult`` as a compact HTML table (clubSandwich ``coef_test`` and HTZ test)."""
    kind = (
        "CR2 with Satterthwaite df (clubSandwich)"
        if rob.method == "CR2"
        else "CR1 with df = clusters - coefficients (metafor robust, adjust = TRUE)"
    )
    cluster = f" (column '{_text(rob.cluster)}')" if rob.cluster else ""
    parts = [
        _paragraph(f"<b>Cluster-robust inference</b>: {_text(kind)}"),
        _paragraph(f"clusters: {rob.n_clusters}{cluster}"),
    ]
    if rob.QM is not None:
        test = "HTZ " if rob.method == "CR2" else ""
        parts.append(
            _paragraph(
                f"{test}Test of moderators: F(df1 = {rob.QM_df[0]}, df2 = "
                f"{_number(rob.QM_df[1], 2)}) = {_number(rob.QM)}, p = {metafor_p(rob.QM_pval)}"
            )
        )
    columns = ["estimate", "se", "statistic", "df", "pval", "ci_lb", "ci_ub"]
    header = ["", "estimate", "se", "tval", "df", "pval", "ci.lb", "ci.ub"]
    parts.append(_table(header, _coefficient_rows(rob.coefficients, columns)))
    parts.extend(_paragraph("Warning: " + _text(warning)) for warning in rob.warnings)
    return '<div class="alliance-result">' + "".join(parts) + "</div>"


def likelihood_ratio_html(lrt) -> str:
    """A likelihood-ratio comparison (``compare``, metafor ``anova(full, reduced)``) as HTML."""
    header = ["", "df", "AIC", "BIC", "AICc", "logLik", "LRT", "pval", "QE"]
    rows = []
    for name, fitted in (("Full", lrt.full), ("Reduced", lrt.reduced)):
        reduced = name == "Reduced"
        rows.append(
            [
                name,
                str(fitted.parameters),
                _number(fitted.aic),
                _number(fitted.bic),
                _number(fitted.aicc),
                _number(fitted.loglik),
                _number(lrt.LRT) if reduced else "",
                metafor_p(lrt.pval) if reduced else "",
                _number(fitted.QE),
            ]
        )
    parts = [
        _paragraph(f"<b>Likelihood-ratio test of nested models</b> ({_text(lrt.method)} fits)"),
        _table(header, rows),
        _paragraph(f"LRT = {_number(lrt.LRT)} on {lrt.df} df, p = {metafor_p(lrt.pval)}"),
    ]
    return '<div class="alliance-result">' + "".join(parts) + "</div>"
