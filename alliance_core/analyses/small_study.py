"""Small-study tests on the model of the analysis: Egger's regression test and PET-PEESE.

Both refit the analysed model with a measure of each effect size's imprecision as an added
moderator: the standard error sqrt(vi) (Egger's test, Egger et al. 1997, in the
mixed-effects form of Sterne & Egger 2005, metafor ``regtest``; PET) or the sampling
variance vi (PEESE; Stanley & Doucouliagos 2014). The refit keeps the model's structure, so
for dependent effect sizes it is the three-level CHE model of the analysis,

    V <- vcalc(vi, cluster = study, obs = es, rho = rho)
    rma.mv(yi ~ sqrt(vi), V, random = ~ 1 | study/es)

and the tests respect the nesting. ``inference="CR2"`` replaces the model-based test by the
cluster-robust one (clubSandwich ``coef_test(fit, vcov = "CR2", cluster = study)`` with
Satterthwaite df), as the analysis itself does under CR2.

A result whose test cannot be read (fewer than 10 studies, Sterne et al. 2011; a robust test on
fewer than 4 Satterthwaite df, Pustejovsky & Tipton 2022) carries the reason in ``caution``
and its ``describe()`` then calls it neither significant nor non-significant. The caveat that
asymmetry is not proof of publication bias (:data:`NOT_PROOF`) ends ``describe()`` unless the
caller says it elsewhere once (``caveat=False``), as the dashboard's verdict does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from alliance_core.data.effect_sizes import transf
from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_p
from alliance_core.model.fitting import fit
from alliance_core.model.results import MetaResult
from alliance_core.model.robust import FEW_CLUSTERS, MIN_RELIABLE_DF, RobustResult

PREDICTORS = {"sei": "standard error", "vi": "sampling variance"}
# Few studies give these tests little power (Sterne et al. 2011 advise at least 10).
FEW_STUDIES = FEW_CLUSTERS
INFERENCES = ("model", "CR2")
NOT_PROOF = (
    "Funnel asymmetry is not proof of publication bias: smaller studies can differ for real "
    "reasons (other patients, settings or measures), and chance alone produces some asymmetry."
)


# -- shared pieces -------------------------------------------------------------------------
def refit_with_predictor(res: MetaResult, predictor: str) -> tuple[MetaResult, str]:
    """``res``'s model refitted with sqrt(vi) ("sei") or vi as the last moderator; returns
    the refit and the predictor's coefficient name."""
    if predictor not in PREDICTORS:
        raise AnalysisError(f"Unknown predictor '{predictor}'; choose 'sei' or 'vi'.")
    data = res.data.copy()
    name = predictor  # "vi": the sampling-variance column itself is the moderator
    if predictor == "sei":
        while name in data.columns:
            name += "_"
        data[name] = np.sqrt(data["vi"].to_numpy(float))
    reference = {t.column: t.reference for t in res.design.terms if t.kind == "categorical"}
    try:
        refitted = fit(
            data,
            yi="yi",
            vi="vi",
            moderators=[*res.moderators, name],
            reference=reference or None,
            method=res.method,
            cluster=res.cluster,
            test=res.test,
            level=res.level,
            rho=res.rho,
            fix_sigma2=res.fix_sigma2,
        )
    except AnalysisError as error:
        raise AnalysisError(
            f"The model with the {PREDICTORS[predictor]} as a moderator cannot be estimated "
            f"({error}) Small-study tests need effect sizes of different precision."
        ) from error
    return refitted, name


def check_inference(inference: str) -> None:
    if inference not in INFERENCES:
        raise AnalysisError(f"Unknown inference '{inference}'; choose 'model' or 'CR2'.")


def robust_of(refitted: MetaResult, inference: str, cluster: str | None) -> RobustResult | None:
    """CR2 of a refit clustered by ``cluster`` (default: the model's study column), or None."""
    check_inference(inference)
    if inference == "model":
        return None
    if cluster is None and refitted.cluster is None:
        raise AnalysisError(
            "Cluster-robust small-study tests group effect sizes by study: name the study "
            "column (cluster='study')."
        )
    return refitted.robust(cluster=cluster, method="CR2")


def study_count(res: MetaResult, robust: RobustResult | None, n_studies: int | None) -> int:
    """The studies behind the tests: the robust clusters, the caller's count, or the model's."""
    if robust is not None:
        return int(robust.n_clusters)
    return int(n_studies if n_studies is not None else res.n_studies)


def few_studies_reason(n: int) -> str | None:
    if n >= FEW_STUDIES:
        return None
    return f"only {n} {'study' if n == 1 else 'studies'} (fewer than {FEW_STUDIES})"


def caution_of(n: int, df: float | None) -> str | None:
    """Why a small-study test cannot be read: few studies, or a robust df below 4."""
    reasons = [few_studies_reason(n)]
    if df is not None and not df >= MIN_RELIABLE_DF:
        reasons.append(
            f"its cluster-robust test rests on {df:.1f} degrees of freedom (below "
            f"{MIN_RELIABLE_DF:g})"
        )
    return "; ".join(r for r in reasons if r) or None


def dependence_notes(res: MetaResult, respected: bool) -> list[str]:
    """The note on dependent effect sizes for a test that respects the nesting or not."""
    if not res.is_three_level or respected:
        return []
    return [
        "Effect sizes of one study share its patients and its design, so they are not "
        "independent pieces of evidence about asymmetry; this test treats them as if they were."
    ]


def model_words(res: MetaResult) -> str:
    """The refitted model in a few words."""
    if not res.is_three_level:
        return "the model"
    within = f"CHE working model, ρ = {res.rho:g}" if res.rho else "independent sampling errors"
    return f"the three-level model (effect sizes nested in studies, {within})"


def inference_words(robust: RobustResult | None) -> str:
    if robust is None:
        return "tested model-based"
    return (
        f"tested cluster-robustly (CR2 by study over {robust.n_clusters} studies, Satterthwaite df)"
    )


def statistic_text(statistic: float, df: float | None, robust: bool) -> str:
    if df is None:
        return f"z = {statistic:.2f}"
    return f"t({df:.1f}) = {statistic:.2f}" if robust else f"t({df:g}) = {statistic:.2f}"


def value_text(value: float, transform: str | None) -> str:
    return f"{float(transf(np.asarray(value), transform)):.3f}"


def _row(refitted: MetaResult, robust: RobustResult | None, term: str):
    """(estimate, se, statistic, df or None, pval, ci_lb, ci_ub) of a coefficient."""
    if robust is not None:
        r = robust.coefficients.loc[term]
        return (
            float(r["estimate"]),
            float(r["se"]),
            float(r["statistic"]),
            float(r["df"]),
            float(r["pval"]),
            float(r["ci_lb"]),
            float(r["ci_ub"]),
        )
    r = refitted.coefficients.loc[term]
    return (
        float(r["estimate"]),
        float(r["se"]),
        float(r["statistic"]),
        refitted.ddf,
        float(r["pval"]),
        float(r["ci_lb"]),
        float(r["ci_ub"]),
    )


# -- Egger's regression test ---------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class EggerTest:
    """Regression test for funnel-plot asymmetry (metafor ``regtest``).

    ``statistic``/``pval`` test the coefficient of the predictor (``slope``) in the model
    refitted with it (``fit``): model-based a z test, or a t test on ``ddf`` degrees of
    freedom (Knapp-Hartung or t tests); with ``inference="CR2"`` the cluster-robust t test of
    ``robust`` on its Satterthwaite ``ddf`` (fractional). For a model without moderators,
    ``limit_estimate`` (with ``limit_ci``, under the same inference) is the intercept of that
    model: the effect expected for a study of infinite precision (standard error 0); with
    moderators it is None. ``caution`` says why the test cannot be read (None: it can).
    """

    predictor: str
    statistic: float
    pval: float
    ddf: float | None
    slope: float
    slope_se: float
    limit_estimate: float | None
    limit_ci: tuple[float, float] | None
    fit: MetaResult
    model: str
    k: int
    n_studies: int
    level: float
    caveats: tuple[str, ...]
    inference: str = "model"
    robust: RobustResult | None = None
    caution: str | None = None

    @property
    def significant(self) -> bool | None:
        """p below 1 - level; None when the test cannot be read (``caution``)."""
        return None if self.caution else bool(self.pval < 1.0 - self.level)

    def funnel_line(self) -> dict[str, float] | None:
        """{"intercept", "slope"} for ``funnel_figure(egger_line=...)`` (models without
        moderators and predictor "sei", where the line lives in the funnel's coordinates)."""
        if self.limit_estimate is None or self.predictor != "sei":
            return None
        return {"intercept": self.limit_estimate, "slope": self.slope}

    def describe(self, transform: str | None = None, caveat: bool = True) -> str:
        """Plain-language account; ``transform="r"`` shows the limit estimate as r;
        ``caveat=False`` leaves out :data:`NOT_PROOF` (said once elsewhere)."""
        what = (
            "Egger's regression test asks whether less precise studies report systematically "
            f"different effects: {model_words(self.fit)} was refitted with each effect size's "
            f"{PREDICTORS[self.predictor]} as a moderator, {inference_words(self.robust)}."
        )
        stat = statistic_text(self.statistic, self.ddf, self.robust is not None)
        direction = "larger" if self.slope > 0 else "smaller"
        if self.caution:
            found = (
                f"Result: {stat}, {format_p(self.pval)}. It cannot be read as finding "
                f"asymmetry or as finding none: {self.caution}."
            )
        elif self.significant:
            found = (
                f"It found asymmetry ({stat}, {format_p(self.pval)}): less precise studies "
                f"report {direction} effects."
            )
        else:
            found = (
                f"It found no clear asymmetry ({stat}, {format_p(self.pval)}); that is not "
                "evidence that there is none."
            )
        parts = [what, found]
        if self.limit_estimate is not None:
            lo, hi = self.limit_ci
            parts.append(
                f"The effect expected for a study with {PREDICTORS[self.predictor]} 0 is "
                f"{value_text(self.limit_estimate, transform)} "
                f"({self.level:.0%} CI {value_text(lo, transform)} to {value_text(hi, transform)})."
            )
        return " ".join([*parts, *self.caveats, *([NOT_PROOF] if caveat else [])])


def egger_test(
    res: MetaResult,
    predictor: str = "sei",
    inference: str = "model",
    cluster: str | None = None,
    n_studies: int | None = None,
) -> EggerTest:
    """Egger's regression test: metafor ``regtest(fit)`` (model = "rma", predictor = "sei").

    Refits ``res``'s model (same moderators, estimator, test and, for three-level models,
    the same study/effect-size structure and CHE rho) with ``sqrt(vi)`` (``predictor="sei"``)
    or ``vi`` added as the last moderator, and tests its coefficient: model-based, or with
    ``inference="CR2"`` cluster-robustly by ``cluster`` (default: the model's study column;
    clubSandwich ``coef_test(vcov = "CR2")``). ``n_studies`` overrides the study count behind
    the few-studies caution of a model-based test (a state's own count).
    """
    check_inference(inference)
    refitted, name = refit_with_predictor(res, predictor)
    robust = robust_of(refitted, inference, cluster)
    slope, slope_se, statistic, df, pval, _, _ = _row(refitted, robust, name)
    intercept_only = res.p == 1
    limit = _row(refitted, robust, refitted.design.names[0]) if intercept_only else None
    n = study_count(res, robust, n_studies)
    return EggerTest(
        predictor=predictor,
        statistic=statistic,
        pval=pval,
        ddf=df,
        slope=slope,
        slope_se=slope_se,
        limit_estimate=limit[0] if limit else None,
        limit_ci=(limit[5], limit[6]) if limit else None,
        fit=refitted,
        model=res.model,
        k=res.k,
        n_studies=n,
        level=res.level,
        caveats=tuple(dependence_notes(res, respected=True)),
        inference=inference,
        robust=robust,
        caution=caution_of(n, df if robust is not None else None),
    )


# -- PET-PEESE -----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PetPeese:
    """Conditional PET-PEESE estimate (Stanley & Doucouliagos 2014).

    ``pet`` is the model refitted with the standard error sqrt(vi) as a moderator, ``peese``
    with the sampling variance vi (``pet_robust``/``peese_robust``: their CR2 inference when
    ``inference="CR2"``). Rule: if PET's intercept is significantly greater than 0 (one-sided
    p < ``alpha``, under the inference), there is a real effect and PEESE's intercept
    estimates it with less bias; otherwise PET's intercept is used. ``chosen`` names the
    model used; ``estimate``, ``se``, ``ci`` and ``pval`` are its intercept's (two-sided p).
    ``caution`` says why PET's test cannot be read (the rule then still picks a model, but
    the pick is no finding).
    """

    pet: MetaResult
    peese: MetaResult
    chosen: str
    pet_one_sided_p: float
    alpha: float
    estimate: float
    se: float
    ci: tuple[float, float]
    pval: float
    has_moderators: bool
    caveats: tuple[str, ...]
    inference: str = "model"
    pet_robust: RobustResult | None = None
    peese_robust: RobustResult | None = None
    caution: str | None = None
    df: float | None = None  # the df of the chosen intercept's test (None: z)

    def describe(self, transform: str | None = None, caveat: bool = True) -> str:
        what = (
            "PET-PEESE extrapolates the effect to a study of perfect precision: PET regresses "
            "effect sizes on their standard errors, PEESE on their sampling variances, and the "
            f"intercept is the effect at zero error. Both refit {model_words(self.pet)}, "
            f"{inference_words(self.pet_robust)}."
        )
        result = (
            f"the {self.chosen} estimate is used: {value_text(self.estimate, transform)} "
            f"({self.pet.level:.0%} CI {value_text(self.ci[0], transform)} to "
            f"{value_text(self.ci[1], transform)})."
        )
        if self.caution:
            rule = (
                f"PET's intercept has one-sided {format_p(self.pet_one_sided_p)} (alpha = "
                f"{self.alpha:g}), so by the rule {result} The test behind that choice cannot "
                f"be read: {self.caution}."
            )
        else:
            rule = (
                f"PET's intercept was "
                f"{'significantly' if self.chosen == 'PEESE' else 'not significantly'} above "
                f"zero (one-sided {format_p(self.pet_one_sided_p)}, alpha = {self.alpha:g}), "
                f"so {result}"
            )
        parts = [what, rule]
        if self.has_moderators:
            parts.append(
                "With moderators the intercept is the effect at zero error for the reference "
                "levels and moderator values of 0."
            )
        parts.append(
            "PET-PEESE is known to overcorrect when effects are heterogeneous and studies "
            "few or similar in size (Stanley 2017)."
        )
        return " ".join([*parts, *self.caveats, *([NOT_PROOF] if caveat else [])])


def pet_peese(
    res: MetaResult,
    alpha: float = 0.05,
    inference: str = "model",
    cluster: str | None = None,
    n_studies: int | None = None,
) -> PetPeese:
    """Stanley & Doucouliagos (2014) PET-PEESE with the conditional rule.

    PET: ``res``'s model + sqrt(vi); PEESE: ``res``'s model + vi (same estimator, test and
    structure, so for a three-level model both are three-level CHE meta-regressions rather
    than the original weighted least squares). PEESE is used when the PET intercept is
    significantly greater than 0 at one-sided ``alpha`` (PET's t or z statistic; under
    ``inference="CR2"`` the robust t on its Satterthwaite df); this assumes effects are
    expected to be positive, as alliance-outcome correlations are.
    """
    if not 0.0 < alpha < 1.0:
        raise AnalysisError(f"PET-PEESE: alpha {alpha} must lie between 0 and 1.")
    check_inference(inference)
    pet, _ = refit_with_predictor(res, "sei")
    peese, _ = refit_with_predictor(res, "vi")
    pet_robust = robust_of(pet, inference, cluster)
    peese_robust = robust_of(peese, inference, cluster)
    intercept = pet.design.names[0]
    _, _, statistic, pet_df, _, _, _ = _row(pet, pet_robust, intercept)
    if pet_df is None:
        one_sided = float(special.ndtr(-statistic))
    else:
        one_sided = float(special.stdtr(pet_df, -statistic))
    chosen = "PEESE" if one_sided < alpha else "PET"
    if chosen == "PEESE":
        estimate, se, _, df, pval, lo, hi = _row(peese, peese_robust, intercept)
    else:
        estimate, se, _, df, pval, lo, hi = _row(pet, pet_robust, intercept)
    n = study_count(res, pet_robust, n_studies)
    return PetPeese(
        pet=pet,
        peese=peese,
        chosen=chosen,
        pet_one_sided_p=one_sided,
        alpha=alpha,
        estimate=estimate,
        se=se,
        ci=(lo, hi),
        pval=pval,
        has_moderators=res.p > 1,
        caveats=tuple(dependence_notes(res, respected=True)),
        inference=inference,
        pet_robust=pet_robust,
        peese_robust=peese_robust,
        caution=caution_of(n, pet_df if pet_robust is not None else None),
        df=df,
    )
