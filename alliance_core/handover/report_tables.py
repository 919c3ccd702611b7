"""The report's APA tables (meta-regression, robust coefficients, heterogeneity) and the number
formats the report's sentences share with them, so a table and its sentence never round apart.
"""

from __future__ import annotations

import math

import numpy as np

from alliance_core.analyses.marginal_flags import mean_cautions
from alliance_core.analyses.model_comparison import ModelComparison
from alliance_core.analyses.run import AnalysisRun
from alliance_core.analyses.state import ModelFlags
from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_coefficient, format_number, format_p, format_p_cell
from alliance_core.handover.report_document import Table
from alliance_core.model.results import MetaResult
from alliance_core.model.robust import RobustResult


# -- building it ------------------------------------------------------------------------------
def ci_text(low: float, high: float, digits: int) -> str:
    return f"[{format_number(low, digits)}, {format_number(high, digits)}]"


def r_text(value: float) -> str:
    """A correlation in APA style: no leading zero."""
    text = format_number(value, 2)
    return text.replace("0.", ".", 1)


def r3_text(value: float) -> str:
    """A rank correlation with three decimals, no leading zero (APA)."""
    return format_number(value, 3).replace("0.", ".", 1)


def stat_symbol(res: MetaResult) -> str:
    return "z" if res.ddf is None else f"t({res.ddf})"


def term_label(res: MetaResult, term: str) -> str:
    if term == "intrcpt":
        return "Intercept"
    for t in res.design.terms:
        if t.kind == "numeric" and t.column == term:
            return {"log_PTR": "log PTR", "PTR": "PTR"}.get(term, term)
        for level in t.levels[1:]:
            if t.kind == "categorical" and term == f"{t.column}{level}":
                return f"{t.column}: {level} (vs. {t.reference})"
    return term


FLAG = "†"


def flag_note(flags: ModelFlags | None, terms) -> str:
    """The table note for flagged rows: which test cannot be trusted and why."""
    if flags is None:
        return ""
    flagged = flags.flagged_terms(terms)
    return "".join(
        f" {FLAG} {term_words(term)}: the test cannot be trusted ({reason})."
        for term, reason in flagged.items()
    )


def term_words(term: str) -> str:
    return "Intercept" if term == "intrcpt" else str(term)


def coefficient_row(
    res: MetaResult, term, row, df: str | None = None, flags: ModelFlags | None = None
) -> tuple[str, ...]:
    """Predictor, b, SE, statistic, (df,) p and CI of one coefficient; the CI has the decimals
    the estimate was given for its SE. A coefficient the ``flags`` mark carries a dagger."""
    b, se = format_coefficient(row["estimate"], row["se"])
    digits = len(b.split(".")[-1]) if "." in b else 2
    statistic = (format_number(row["statistic"], 2),) + (() if df is None else (df,))
    mark = f" {FLAG}" if flags is not None and flags.coefficient_caution(str(term)) else ""
    return (
        term_label(res, str(term)) + mark,
        b,
        se,
        *statistic,
        format_p_cell(row["pval"]),
        ci_text(row["ci_lb"], row["ci_ub"], digits),
    )


def regression_table(
    run: AnalysisRun, number: int, on_r_scale: bool, flags: ModelFlags | None = None
) -> Table:
    """The model-based coefficients; rows the ``flags`` mark carry a dagger."""
    res = run.result
    stat = "z" if res.ddf is None else "t"
    rows = [
        coefficient_row(res, term, row, flags=flags) for term, row in res.coefficients.iterrows()
    ]
    note = "Coefficients are on the Fisher's z scale. " if on_r_scale else ""
    return Table(
        number=number,
        title="Meta-regression coefficients",
        header=("Predictor", "b", "SE", stat, "p", f"{res.level:.0%} CI"),
        rows=tuple(rows),
        note=note
        + (
            f"k = {res.k}"
            + (f" effect sizes in {res.n_studies} studies" if res.is_three_level else "")
            + f"; {res.method} estimation"
            + ("; t tests on k − p df." if res.ddf is not None else "; z tests.")
        )
        + flag_note(flags, res.coefficients.index),
    )


def robust_table(
    run: AnalysisRun,
    robust: RobustResult,
    number: int,
    on_r_scale: bool,
    flags: ModelFlags | None = None,
) -> Table:
    """The coefficients with cluster-robust SE, t, Satterthwaite df, p and CI, and the HTZ test;
    rows the ``flags`` mark carry a dagger and the note says why."""
    res = run.result
    rows = [
        coefficient_row(res, term, row, df=format_number(row["df"], 1), flags=flags)
        for term, row in robust.coefficients.iterrows()
    ]
    note = "Coefficients are on the Fisher's z scale. " if on_r_scale else ""
    note += (
        f"{robust.method} cluster-robust standard errors, clustered by "
        f"{robust.cluster or 'study'} ({robust.n_clusters} clusters); t tests on Satterthwaite df."
    )
    if robust.QM is not None:
        df1, df2 = robust.QM_df
        note += (
            f" Test of all moderators: F({df1}, {format_number(df2, 1)}) = "
            f"{format_number(robust.QM, 2)}, {format_p(robust.QM_pval)}"
            + (" (HTZ)." if robust.method == "CR2" else ".")
        )
    for warning in robust.warnings:
        note += f" Note: {warning}"
    note += flag_note(flags, robust.coefficients.index)
    return Table(
        number=number,
        title="Meta-regression coefficients with cluster-robust inference",
        header=("Predictor", "b", "SE", "t", "df", "p", f"{robust.level:.0%} CI"),
        rows=tuple(rows),
        note=note,
    )


def heterogeneity_table(res: MetaResult, number: int, on_r_scale: bool) -> Table:
    rows: list[tuple[str, str]] = []
    if res.is_three_level:
        rows += [
            ("σ² between studies", format_number(res.sigma2["study"], 4)),
            ("σ² within studies", format_number(res.sigma2["es"], 4)),
            ("I² total (%)", format_number(res.I2, 1)),
            ("I² between studies (%)", format_number(res.I2_levels["study"], 1)),
            ("I² within studies (%)", format_number(res.I2_levels["es"], 1)),
        ]
    elif res.method != "EE":
        ci = res.tau2_ci
        rows += [
            ("τ²", format_number(res.tau2, 4) + (f" {ci_text(ci[0], ci[1], 4)}" if ci else "")),
            ("τ", format_number(math.sqrt(res.tau2), 3)),
            ("I² (%)", format_number(res.I2, 1)),
            ("H²", format_number(res.H2, 2)),
        ]
    else:
        rows.append(("I² (%)", format_number(res.I2, 1)))
    rows.append(
        (
            f"Q{' (residual)' if res.p > 1 else ''}",
            f"Q({res.QE_df}) = {format_number(res.QE, 2)}, {format_p(res.QE_pval)}",
        )
    )
    if res.R2 is not None:
        rows.append(("Pseudo-R² (%)", format_number(res.R2, 1)))
    return Table(
        number=number,
        title="Heterogeneity",
        header=("Statistic", "Value"),
        rows=tuple(rows),
        note="Variance components on the model scale"
        + (" (Fisher's z)." if on_r_scale else ".")
        + " Interval: Q-profile where given.",
    )


def marginal_means_tables(
    run: AnalysisRun,
    first: int,
    on_r_scale: bool,
    robust: RobustResult | None = None,
    flags: ModelFlags | None = None,
) -> list[Table]:
    """One table per categorical moderator: each level's marginal mean with its CI and
    prediction interval (as r for correlations), k and df, under the inference shown
    (``robust``: CR2), as the Moderators page shows them; a level whose mean the page marks
    (``flags``: its CR2 df below 4, fewer than 10 studies under CR2, a single study) carries
    a dagger and the note says why. A moderator whose means the engine refuses gets no
    table."""
    res = run.result
    tables = []
    for term in res.design.terms:
        if term.kind != "categorical":
            continue
        try:
            means = res.marginal_means(term.column, robust=robust)
        except AnalysisError:
            continue
        t = means.table
        prefix = "r_" if on_r_scale else ""
        cautions = mean_cautions(run, flags, means) if flags is not None else {}

        def shown(value: float) -> str:
            return r_text(value) if on_r_scale else format_number(value, 3)

        rows = []
        for level, row in t.iterrows():
            pi = (
                f"[{shown(row[prefix + 'pi_lb'])}, {shown(row[prefix + 'pi_ub'])}]"
                if math.isfinite(row["pi_lb"])
                else "–"
            )
            rows.append(
                (
                    str(level) + (f" {FLAG}" if str(level) in cautions else ""),
                    shown(row["r" if on_r_scale else "estimate"]),
                    f"[{shown(row[prefix + 'ci_lb'])}, {shown(row[prefix + 'ci_ub'])}]",
                    pi,
                    str(int(row["k"])),
                    "∞" if math.isinf(row["df"]) else format_number(row["df"], 1),
                )
            )
        level = f"{means.level:.0%}"
        inference = (
            f"{robust.method} cluster-robust standard errors, each mean on its own Satterthwaite df"
            if robust is not None
            else "model-based standard errors"
        )
        tables.append(
            Table(
                number=first + len(tables),
                title=f"Marginal means by {term.column}",
                header=(
                    term.column,
                    "r" if on_r_scale else "Estimate",
                    f"{level} CI",
                    f"{level} PI",
                    "k",
                    "df",
                ),
                rows=tuple(rows),
                note=(
                    "Each level's expected effect with numeric moderators at their means and "
                    "the other categorical moderators averaged over how often their levels "
                    f"occur; {inference}; PI: prediction interval."
                    + "".join(
                        f" {FLAG} {level}: the interval cannot be trusted ({reason})."
                        for level, reason in cautions.items()
                    )
                ),
            )
        )
    return tables


def comparison_table(comparison: ModelComparison, number: int) -> Table:
    """The model and its neighbours (``model_comparison``): parameters, fit statistics and
    the likelihood-ratio test of each neighbour against the model fitted the same way."""
    rows = []
    for _, row in comparison.table.iterrows():
        tested = bool(np.isfinite(row["LRT"]))
        rows.append(
            (
                str(row["model"]),
                str(row["method"]),
                str(int(row["parameters"])),
                format_number(row["loglik"], 2),
                format_number(row["aic"], 2),
                format_number(row["bic"], 2),
                format_number(row["aicc"], 2),
                format_number(row["LRT"], 2) if tested else "–",
                str(int(row["df"])) if tested else "–",
                format_p_cell(row["pval"]) if tested else "–",
            )
        )
    return Table(
        number=number,
        title="Model comparison",
        header=("Model", "Fit", "Parameters", "logLik", "AIC", "BIC", "AICc", "LRT", "df", "p"),
        rows=tuple(rows),
        note=comparison.note.replace("\n", " "),
    )
