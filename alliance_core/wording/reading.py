"""Plain-language readings of a fitted model, for people who browse rather than read code.

Each function turns numbers of a ``MetaResult`` into one or two sentences. The wording is
deliberately cautious: it says what an estimate and its interval allow, including when a
moderator is *not* supported by the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alliance_core.formatting import (
    format_coefficient,
    format_number,
    format_p,
)
from alliance_core.model.inference import predict_under
from alliance_core.model.nesting import display_name
from alliance_core.model.results import MetaResult
from alliance_core.wording.ptr_slope import PTR_SLOPE_MEANING


@dataclass(frozen=True)
class EffectWords:
    """How to name an effect-size measure in a sentence: "correlation" and "r"."""

    noun: str  # "correlation", "standardized mean difference", "effect size"
    symbol: str | None  # "r", "SMD"; None when the measure has no usual symbol


_MEASURES = {
    "ZCOR": EffectWords("correlation", "r"),
    "COR": EffectWords("correlation", "r"),
    "SMD": EffectWords("standardized mean difference", "SMD"),
    "MD": EffectWords("mean difference", "MD"),
    "OR": EffectWords("log odds ratio", "log OR"),
    "RR": EffectWords("log risk ratio", "log RR"),
}


def effect_words(measure: str | None) -> EffectWords:
    """The words for a measure code (metafor's escalc names; None or unknown: "effect size").

    The one place that decides how effects are named, so every reading says the same.
    """
    return _MEASURES.get((measure or "").upper(), EffectWords("effect size", None))


def _pct(level: float) -> str:
    return f"{100 * level:g}%"


def pooled_effect(
    res: MetaResult,
    on_r_scale: bool = True,
    measure: str | None = None,
    topic: str = "alliance–outcome ",
    band=None,
) -> str:
    """The average effect with its confidence and prediction intervals.

    ``measure`` names the effect (see :func:`effect_words`); by default "ZCOR" when
    ``on_r_scale`` and a generic "effect size" otherwise. ``topic`` precedes the noun.
    ``band`` (a :class:`~alliance_core.figures.BandInference`, e.g. CR2) gives the intervals
    of its robust prediction (robust se, t on the prediction's own Satterthwaite df).
    """
    words = effect_words(measure or ("ZCOR" if on_r_scale else None))
    robust = None if band is None else band.robust
    pred = predict_under(res, robust, transform="r" if on_r_scale else None).iloc[0]
    value = format_number(pred["pred"])
    stated = f"{words.symbol} = {value}" if words.symbol == "r" else value
    text = (
        f"The average {topic}{words.noun} is {stated} "
        f"({_pct(res.level)} CI {format_number(pred['ci_lb'])} to "
        f"{format_number(pred['ci_ub'])})"
    )
    if res.p > 1:
        text += " at the reference level or mean of every moderator"
    text += "."
    if np.isfinite(pred["pi_lb"]):
        text += (
            f" In a new study like these, the true {words.noun} is expected to lie between "
            f"{format_number(pred['pi_lb'])} and {format_number(pred['pi_ub'])} "
            f"({_pct(res.level)} prediction interval)."
        )
    return text


def which_model(
    res: MetaResult,
    moderators: Sequence[str],
    *,
    pooled: bool = False,
    aggregated_from: int | None = None,
    where: str = "on this page",
) -> str:
    """Which model a page's numbers come from: with or without moderators, and its k.

    ``moderators`` are the model's moderator columns; ``aggregated_from`` the number of
    effect sizes behind a two-level model on one aggregated effect per study; ``where`` the
    part of the page the statement covers ("in this tab" when a tab uses another model).
    """
    if res.is_three_level:
        size = f"k = {res.k:,} effect sizes in {res.n_studies:,} studies"
    elif aggregated_from is not None:
        size = (
            f"k = {res.k:,} studies (one aggregated effect each, from {aggregated_from:,} "
            "effect sizes)"
        )
    else:
        size = f"k = {res.k:,} effect sizes"
    if not moderators:
        kind = "the pooled model without moderators" if pooled else "the model without moderators"
    else:
        names = ", ".join(display_name(m) for m in moderators)
        kind = f"the model with moderators ({names})"
    return f"Numbers {where} come from {kind}; {size}."


def heterogeneity(res: MetaResult, caution: str | None = None) -> str:
    """How much the true effects vary, and at which level.

    ``caution`` (e.g. ``ModelFlags.heterogeneity_caution()``: fewer than 3 studies) replaces
    the reading: the Q test is stated without a verdict and no share of heterogeneity is given.
    """
    if caution:
        return (
            f"How much the true effects vary cannot be read from these data: {caution}. "
            f"The Q test (Q({res.QE_df}) = {res.QE:.1f}, p {_p(res.QE_pval)}) and I² are shown "
            "for completeness only."
        )
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


def within_study_heterogeneity(lrt, alpha: float = 0.05) -> str:
    """The likelihood-ratio test of sigma2_es = 0 (three-level against the same model without
    within-study heterogeneity), in words."""
    stats_text = f"likelihood-ratio test: χ²({lrt.df}) = {lrt.LRT:.2f}, p {_p(lrt.pval)}"
    if lrt.pval < alpha:
        return (
            "Effect sizes of the same study differ more than their sampling error explains: "
            "the model with heterogeneity within studies fits clearly better than the one "
            f"without ({stats_text}). Modelling both levels is needed."
        )
    return (
        "The data do not show that effect sizes of the same study differ beyond sampling "
        f"error ({stats_text}); the test is conservative, because a variance cannot be below "
        "zero, so a small within-study variance may still be there."
    )


def moderator_test(
    res: MetaResult, alpha: float = 0.05, omnibus=None, caution: str | None = None
) -> str:
    """Whether the moderators together explain heterogeneity.

    ``omnibus`` = (statistic, df1, df2, p) replaces the model's QM test (e.g. the CR2 HTZ test
    of ``AnalysisRun.omnibus``, whose df2 is fractional). ``caution`` (why the test cannot be
    trusted, e.g. ``ModelFlags.omnibus_caution()``) replaces the verdict: a flagged test is
    never called significant or non-significant.
    """
    if res.QM is None:
        return "No moderators are in the model."
    if omnibus is None:
        statistic, pval = res.QM, res.QM_pval
        label = f"F({res.QM_df}, {res.QM_df2})" if res.QM_df2 is not None else f"QM({res.QM_df})"
    else:
        statistic, df1, df2, pval = omnibus
        label = f"F({df1}, {df2:.1f})" if df2 is not None else f"QM({df1})"
    if caution:
        return untrusted(
            f"The test of all moderators ({label} = {statistic:.2f}, p {_p(pval)})", caution
        )
    verdict = (
        "Together, the moderators explain a significant part of the differences between effects"
        if pval < alpha
        else "Together, the moderators do not significantly explain the differences between effects"
    )
    r2 = res.R2
    tail = f"; they account for about {r2:.0f}% of the heterogeneity" if r2 is not None else ""
    return f"{verdict} ({label} = {statistic:.2f}, p {_p(pval)}){tail}."


def ptr_effect(
    res: MetaResult,
    ptr_column: str,
    alpha: float = 0.05,
    coefficients: pd.DataFrame | None = None,
    caution: str | None = None,
) -> str:
    """The direction and support of the PTR moderation, in words a clinician understands.

    ``coefficients`` replaces the model's table (e.g. ``AnalysisRun.inference_table`` under CR2);
    ``caution`` (why its test cannot be trusted) replaces the verdict.
    """
    table = res.coefficients if coefficients is None else coefficients
    if ptr_column not in table.index:
        return "PTR is not in the model."
    row = table.loc[ptr_column]
    scale = "log PTR" if ptr_column.lower().startswith("log") else "PTR"
    estimate, low, high = _coefficient(row)
    # With PTR x a categorical moderator the PTR coefficient is one level's slope (the
    # reference level's), not every study's: the sentence names that level.
    at, note = _interaction_words(res, ptr_column, scale)
    if caution:
        return (
            untrusted(
                f"The {scale} coefficient{at} ({estimate}, {_pct(res.level)} CI {low} to {high}, "
                f"p {_p(row['pval'])})",
                caution,
            )
            + note
        )
    if row["pval"] >= alpha:
        return (
            f"The data do not support a PTR effect{at}: the {scale} coefficient is {estimate} "
            f"({_pct(res.level)} CI {low} to {high}, p {_p(row['pval'])}), "
            "an interval that includes no change." + note
        )
    direction = "weaker" if row["estimate"] < 0 else "stronger"
    studies = f"Studies{at} in which" if at else "Studies in which"
    return (
        f"{studies} each therapist treats more patients show a {direction} alliance–outcome "
        f"link: the {scale} coefficient is {estimate} ({_pct(res.level)} CI "
        f"{low} to {high}, p {_p(row['pval'])})."
        + note
        + (f" {PTR_SLOPE_MEANING}" if row["estimate"] < 0 else "")
    )


def _interaction_words(res: MetaResult, ptr_column: str, scale: str) -> tuple[str, str]:
    """(" with alliance_rater = patient", " PTR interacts with ...") for a model with PTR x a
    categorical moderator; ("", "") otherwise. Plain text, like every reading."""
    partners = [
        part
        for term in res.design.interactions
        if ptr_column in [p.column for p in term.parts]
        for part in term.parts
        if part.column != ptr_column and part.kind == "categorical"
    ]
    if not partners:
        return "", ""
    # Readings are plain text: the page escapes the whole sentence once when it shows it.
    levels = " and ".join(f"{p.column} = {p.reference}" for p in partners)
    names = " and ".join(p.column for p in partners)
    note = (
        f" PTR interacts with {names} in this model, so each level has its own PTR slope: this "
        f"is the slope at the reference level ({levels}); the test of {scale} × {names} says "
        "whether the slopes differ."
    )
    return f" with {levels}", note


def ptr_change(readout, caution: str | None = None) -> str:
    """The PTR readout (a ``PTRSlopeReadout``: the change in the predicted correlation between
    two PTR values) in words. Without ``caution`` its own sentence, which reads the interval;
    with one (why the change's test cannot be trusted, in ModelFlags' words) the numbers, why
    they cannot be trusted and no reading of the interval either way."""
    if not caution:
        return readout.sentence
    low, high = sorted(readout.difference_r_ci)
    return untrusted(
        f"The change in the predicted alliance–outcome correlation from "
        f"{readout.from_ptr:g} to {readout.to_ptr:g} patients "
        f"per therapist ({_signed(readout.difference_r)}, {_pct(readout.level)} CI "
        f"{_signed(low)} to {_signed(high)}, p {_p(readout.pval)})",
        caution,
    )


def _signed(value: float) -> str:
    """A change in r with its sign (a true minus), three decimals: changes are small."""
    text = format_number(value, 3)
    return text if text.startswith("\u2212") or float(value) == 0 else "+" + text


def untrusted(test: str, caution: str) -> str:
    """A flagged test in words: its numbers, that it cannot be trusted and why, and no verdict
    (neither "significant" nor "not significant")."""
    return (
        f"{test} cannot be trusted: {caution}. Do not read it as showing an effect or as "
        "showing none."
    )


def _p(p: float) -> str:
    """p after a "p " already written: "= .021", "< .001"."""
    return format_p(p, symbol=False)


def _coefficient(row) -> tuple[str, str, str]:
    """Estimate and CI limits with the decimals the standard error needs."""
    estimate, _ = format_coefficient(row["estimate"], row["se"], minimum=3)
    low, _ = format_coefficient(row["ci_lb"], row["se"], minimum=3)
    high, _ = format_coefficient(row["ci_ub"], row["se"], minimum=3)
    return estimate, low, high
