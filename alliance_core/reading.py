"""Plain-language readings of a fitted model, for people who browse rather than read code.

Each function turns numbers of a ``MetaResult`` into one or two sentences. The wording is
deliberately cautious: it says what an estimate and its interval allow, including when a
moderator is *not* supported by the data.
"""

from __future__ import annotations

import numpy as np

from alliance_core.results import MetaResult


def _pct(level: float) -> str:
    return f"{100 * level:g}%"


def pooled_effect(res: MetaResult, on_r_scale: bool = True) -> str:
    """The average effect with its confidence and prediction intervals."""
    pred = res.predict(transform="r" if on_r_scale else None).iloc[0]
    what = "correlation" if on_r_scale else "effect size"
    symbol = "r" if on_r_scale else "estimate"
    text = (
        f"The average alliance–outcome {what} is {symbol} = {pred['pred']:.2f} "
        f"({_pct(res.level)} CI {pred['ci_lb']:.2f} to {pred['ci_ub']:.2f})"
    )
    if res.p > 1:
        text += " at the reference level or mean of every moderator"
    text += "."
    if np.isfinite(pred["pi_lb"]):
        text += (
            f" In a new study like these, the true {what} is expected to lie between "
            f"{pred['pi_lb']:.2f} and {pred['pi_ub']:.2f} ({_pct(res.level)} prediction interval)."
        )
    return text


def heterogeneity(res: MetaResult) -> str:
    """How much the true effects vary, and at which level."""
    significant = res.QE_pval < 0.05
    q_text = (
        f"The effects differ more than sampling error alone explains (Q({res.QE_df}) = {res.QE:.1f}, "
        f"p {_p(res.QE_pval)})."
        if significant
        else f"The effects do not differ more than sampling error would make them (Q({res.QE_df}) = "
        f"{res.QE:.1f}, p {_p(res.QE_pval)})."
    )
    share = f"About {res.I2:.0f}% of the variation in observed effects is true heterogeneity rather than sampling error"
    if res.is_three_level:
        study, within = res.I2_levels["study"], res.I2_levels["es"]
        share += (
            f": {study:.0f}% between studies and {within:.0f}% between effect sizes within studies"
        )
    return f"{q_text} {share}."


def moderator_test(res: MetaResult, alpha: float = 0.05) -> str:
    """Whether the moderators together explain heterogeneity."""
    if res.QM is None:
        return "No moderators are in the model."
    label = f"F({res.QM_df}, {res.QM_df2})" if res.QM_df2 is not None else f"QM({res.QM_df})"
    verdict = (
        "Together, the moderators explain a significant part of the differences between effects"
        if res.QM_pval < alpha
        else "Together, the moderators do not significantly explain the differences between effects"
    )
    r2 = res.R2
    tail = f"; they account for about {r2:.0f}% of the heterogeneity" if r2 is not None else ""
    return f"{verdict} ({label} = {res.QM:.2f}, p {_p(res.QM_pval)}){tail}."


def ptr_effect(res: MetaResult, ptr_column: str, alpha: float = 0.05) -> str:
    """The direction and support of the PTR moderation, in words a clinician understands."""
    if ptr_column not in res.coefficients.index:
        return "PTR is not in the model."
    row = res.coefficients.loc[ptr_column]
    scale = "log PTR" if ptr_column.lower().startswith("log") else "PTR"
    if row["pval"] >= alpha:
        return (
            f"The data do not support a PTR effect: the {scale} coefficient is {row['estimate']:.3f} "
            f"({_pct(res.level)} CI {row['ci_lb']:.3f} to {row['ci_ub']:.3f}, p {_p(row['pval'])}), "
            "an interval that includes no change."
        )
    direction = "weaker" if row["estimate"] < 0 else "stronger"
    return (
        f"Studies in which each therapist treats more patients show a {direction} alliance–outcome "
        f"link: the {scale} coefficient is {row['estimate']:.3f} ({_pct(res.level)} CI "
        f"{row['ci_lb']:.3f} to {row['ci_ub']:.3f}, p {_p(row['pval'])})."
        + (
            " A negative slope is what a therapist contribution to the alliance predicts."
            if row["estimate"] < 0
            else ""
        )
    )


def _p(p: float) -> str:
    return "< .001" if p < 0.001 else f"= {p:.3f}".replace("0.", ".")
