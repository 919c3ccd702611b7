"""The results download: every number the Overview and Moderators pages show, one row each.

One table, built here from the fitted model, is what the dashboard offers as "Results (CSV)",
what the reproduction scripts compare against, and what the report's numbers come from.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping

import pandas as pd

from alliance_core.analyses.model_comparison import ModelComparison
from alliance_core.handover.bias_results import PublicationBias, bias_rows
from alliance_core.handover.csv_export import neutralised
from alliance_core.handover.provenance import Provenance, with_comment_lines
from alliance_core.handover.results_moderators import comparison_rows, marginal_rows
from alliance_core.handover.results_scale import scale_rows
from alliance_core.handover.results_wild import wild_rows
from alliance_core.model.location_scale import LocationScaleResult
from alliance_core.model.results import MetaResult
from alliance_core.model.robust import RobustResult
from alliance_core.model.wild_bootstrap import WildBootstrapResult


def categorical_moderators(res: MetaResult) -> list[str]:
    return [term.column for term in res.design.terms if term.kind == "categorical"]


RESULT_COLUMNS = [
    "section",
    "name",
    "estimate",
    "se",
    "statistic",
    "df",
    "df2",
    "pval",
    "ci_lb",
    "ci_ub",
    "pi_lb",
    "pi_ub",
]


def results_frame(
    res: MetaResult,
    on_r_scale: bool = True,
    robust: RobustResult | None = None,
    *,
    bias: PublicationBias | None = None,
    comparison: ModelComparison | None = None,
    heterogeneity: LocationScaleResult | None = None,
    wild_bootstrap: Mapping[str, WildBootstrapResult] | None = None,
) -> pd.DataFrame:
    """Everything the Overview and Moderators pages show, one tidy row per number, full precision.

    Sections: "coefficient" (model scale: Fisher's z for correlations), "prediction" (the
    average effect at typical moderator values, as r when ``on_r_scale``), "heterogeneity",
    "test" (QE, QM and one Wald test per categorical moderator) and "model" (k, studies, fit).
    With ``robust`` (cluster-robust inference on ``res``), sections "robust coefficient" and
    "robust test" follow: the same coefficients with the robust se, t, Satterthwaite df (CR2),
    p and CI, the robust test of all moderators (HTZ F) and one per categorical moderator.
    Sections "marginal mean" (and "robust marginal mean" with ``robust``) follow: the
    Moderators page's marginal means of each categorical moderator (``results_moderators``),
    and with ``comparison`` (``model_comparison(res)``) section "model comparison"; with
    ``heterogeneity`` (the page's location-scale refit) section "location-scale"; with
    ``wild_bootstrap`` (test label -> the page's cluster wild bootstrap result) section
    "wild bootstrap" (``results_wild``).
    With ``bias`` (the publication-bias results of this pooled model), sections "selection
    model" (or "selection model (cluster-robust)") and "fail-safe N" close the table.
    """
    rows: list[dict] = []
    for term, row in res.coefficients.iterrows():
        rows.append(
            {
                "section": "coefficient",
                "name": term,
                "estimate": row["estimate"],
                "se": row["se"],
                "statistic": row["statistic"],
                "df": res.ddf,
                "pval": row["pval"],
                "ci_lb": row["ci_lb"],
                "ci_ub": row["ci_ub"],
            }
        )
    pred = res.predict(transform="r" if on_r_scale else None).iloc[0]
    rows.append(
        {
            "section": "prediction",
            "name": ("r" if on_r_scale else "effect")
            + (" at typical moderator values" if res.p > 1 else " (pooled)")
            # Under CR2 the page shows the robust prediction (its own row below): say which
            # inference this one is.
            + (", model-based" if robust is not None else ""),
            **{key: pred[key] for key in ("ci_lb", "ci_ub", "pi_lb", "pi_ub")},
            "estimate": pred["pred"],
        }
    )
    if res.is_three_level:
        for level, value in res.sigma2.items():
            rows.append({"section": "heterogeneity", "name": f"sigma2_{level}", "estimate": value})
        for level, value in res.I2_levels.items():
            rows.append({"section": "heterogeneity", "name": f"I2_{level}", "estimate": value})
    else:
        ci = res.tau2_ci if res.method != "EE" else None
        rows.append(
            {
                "section": "heterogeneity",
                "name": "tau2",
                "estimate": res.tau2,
                "se": res.tau2_se,
                "ci_lb": ci[0] if ci else None,
                "ci_ub": ci[1] if ci else None,
            }
        )
        rows.append({"section": "heterogeneity", "name": "H2", "estimate": res.H2})
    rows.append({"section": "heterogeneity", "name": "I2", "estimate": res.I2})
    if res.R2 is not None:
        rows.append({"section": "heterogeneity", "name": "R2", "estimate": res.R2})
    rows.append(
        {
            "section": "test",
            "name": "QE",
            "statistic": res.QE,
            "df": res.QE_df,
            "pval": res.QE_pval,
        }
    )
    if res.QM is not None:
        rows.append(
            {
                "section": "test",
                "name": "QM",
                "statistic": res.QM,
                "df": res.QM_df,
                "df2": res.QM_df2,
                "pval": res.QM_pval,
            }
        )
    for column in categorical_moderators(res):
        test = res.wald_test([column])
        rows.append(
            {
                "section": "test",
                "name": f"wald_{column}",
                "statistic": test.statistic,
                "df": test.df,
                "df2": test.df2,
                "pval": test.pval,
            }
        )
    for name, value in (
        ("k", res.k),
        ("studies", res.n_studies),
        ("logLik", res.loglik),
        ("AIC", res.aic),
        ("BIC", res.bic),
    ):
        rows.append({"section": "model", "name": name, "estimate": value})
    if robust is not None:
        rows.extend(robust_rows(res, robust, on_r_scale))
    rows.extend(marginal_rows(res, robust))
    if comparison is not None:
        rows.extend(comparison_rows(comparison))
    if heterogeneity is not None:
        rows.extend(scale_rows(heterogeneity))
    if wild_bootstrap:
        rows.extend(wild_rows(wild_bootstrap))
    if bias is not None:
        rows.extend(bias_rows(bias, on_r_scale))
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    for column in ("df", "df2"):
        values = pd.to_numeric(frame[column], errors="coerce")
        # Whole-number df print as integers; Satterthwaite df (CR2) keep their fraction.
        if (values.dropna() % 1 == 0).all():
            frame[column] = values.astype("Int64")
        else:
            frame[column] = values
    return frame


def robust_rows(res: MetaResult, robust: RobustResult, on_r_scale: bool = True) -> list[dict]:
    """The robust coefficient table, the robust prediction (the "prediction" row's robust
    counterpart: robust se, t on the prediction's own Satterthwaite df, PI from the model's
    variance components; metafor ``predict(robust(..., clubSandwich = TRUE))``) and the robust
    tests as result rows (sections "robust ...")."""
    rows: list[dict] = []
    for term, row in robust.coefficients.iterrows():
        rows.append(
            {
                "section": "robust coefficient",
                "name": term,
                **{key: row[key] for key in ("estimate", "se", "statistic", "df", "pval")},
                "ci_lb": row["ci_lb"],
                "ci_ub": row["ci_ub"],
            }
        )
    pred = robust.predict(transform="r" if on_r_scale else None).iloc[0]
    rows.append(
        {
            "section": "robust prediction",
            "name": ("r" if on_r_scale else "effect")
            + (" at typical moderator values" if res.p > 1 else " (pooled)")
            + ", CR2 (own Satterthwaite df)",
            **{key: pred[key] for key in ("ci_lb", "ci_ub", "pi_lb", "pi_ub")},
            "estimate": pred["pred"],
        }
    )
    if robust.QM is not None:
        rows.append(
            {
                "section": "robust test",
                "name": "QM",
                "statistic": robust.QM,
                "df": robust.QM_df[0],
                "df2": robust.QM_df[1],
                "pval": robust.QM_pval,
            }
        )
    for column in categorical_moderators(res):
        test = robust.wald_test([column])
        rows.append(
            {
                "section": "robust test",
                "name": f"wald_{column}",
                "statistic": test.statistic,
                "df": test.df,
                "df2": test.df2,
                "pval": test.pval,
            }
        )
    return rows


def to_csv_text(frame: pd.DataFrame, *, for_scripts: bool = False) -> str:
    """CSV text with every text field quoted, so a '#' inside a value is never read as the
    start of a comment by ``read_csv(comment="#")`` (pandas) or ``read.csv`` (R).

    Text a spreadsheet would run as a formula is neutralised (see ``alliance_core.handover.csv_export``):
    a person may open any of these files. ``for_scripts``: the file is read back by a
    reproduction script, which undoes the neutralisation (it is made reversible), so a level
    such as "-other" still matches.
    """
    frame = neutralised(frame, reversible=for_scripts)
    return frame.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC)


def results_csv(
    res: MetaResult,
    on_r_scale: bool = True,
    provenance: Provenance | None = None,
    robust: RobustResult | None = None,
    *,
    for_scripts: bool = False,
    bias: PublicationBias | None = None,
    comparison: ModelComparison | None = None,
    heterogeneity: LocationScaleResult | None = None,
    wild_bootstrap: Mapping[str, WildBootstrapResult] | None = None,
) -> bytes:
    """The results download: provenance comment lines, then one row per number."""
    frame = results_frame(
        res,
        on_r_scale,
        robust,
        bias=bias,
        comparison=comparison,
        heterogeneity=heterogeneity,
        wild_bootstrap=wild_bootstrap,
    )
    return with_comment_lines(to_csv_text(frame, for_scripts=for_scripts), provenance)
