"""A report to paste into a paper: methods, APA-style results, tables, figures, provenance.

``build_report`` assembles one :class:`Report` from the fitted analysis (and its pooled model
without moderators); ``Report.to_html`` and ``Report.to_docx`` render that one object, so the
HTML and the Word file always say the same. Every piece of user text (file, column and level
names) is escaped in HTML and written as plain text runs in Word. Numbers use
``alliance_core.formatting`` (APA p-values, decimals from the SE).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import plotly.graph_objects as go

from alliance_core.analyses.model_comparison import ModelComparison
from alliance_core.analyses.run import AnalysisRun
from alliance_core.analyses.selection import THREE_PSM
from alliance_core.analyses.state import AnalysisState, ModelFlags
from alliance_core.errors import AnalysisError
from alliance_core.figures import export_figure
from alliance_core.formatting import format_coefficient, format_number, format_p
from alliance_core.handover.bias_results import PublicationBias, state_publication_bias
from alliance_core.handover.provenance import Provenance, fitted_rho, fitted_structure
from alliance_core.handover.report_bias import BIAS_REFERENCES, bias_methods, bias_paragraph
from alliance_core.handover.report_bias import bias_readings as bias_readings
from alliance_core.handover.report_document import Figure, Report
from alliance_core.handover.report_tables import (
    ci_text,
    comparison_table,
    heterogeneity_table,
    marginal_means_tables,
    r_text,
    regression_table,
    robust_table,
    stat_symbol,
)
from alliance_core.handover.report_wild import WILD_REFERENCES, wild_methods, wild_sentences
from alliance_core.model.nesting import AGGREGATED, INDEPENDENT
from alliance_core.model.results import MetaResult
from alliance_core.model.robust import RobustResult
from alliance_core.model.wild_bootstrap import WildBootstrapResult
from alliance_core.wording.figure_text import plain_figure

SIMULATED_NOTICE = (
    "SIMULATED DATA: the numbers in this report come from simulated studies, not real ones."
)

REFERENCES = {
    "metafor": "Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor "
    "package. Journal of Statistical Software, 36(3), 1–48. https://doi.org/10.18637/jss.v036.i03",
    "REML": "Viechtbauer, W. (2005). Bias and efficiency of meta-analytic variance estimators "
    "in the random-effects model. Journal of Educational and Behavioral Statistics, 30(3), "
    "261–293.",
    "ML": "Viechtbauer, W. (2005). Bias and efficiency of meta-analytic variance estimators "
    "in the random-effects model. Journal of Educational and Behavioral Statistics, 30(3), "
    "261–293.",
    "DL": "DerSimonian, R., & Laird, N. (1986). Meta-analysis in clinical trials. Controlled "
    "Clinical Trials, 7(3), 177–188.",
    "PM": "Paule, R. C., & Mandel, J. (1982). Consensus values and weighting factors. Journal "
    "of Research of the National Bureau of Standards, 87(5), 377–385.",
    "HE": "Hedges, L. V., & Olkin, I. (1985). Statistical methods for meta-analysis. "
    "Academic Press.",
    "SJ": "Sidik, K., & Jonkman, J. N. (2005). Simple heterogeneity variance estimation for "
    "meta-analysis. Journal of the Royal Statistical Society, Series C, 54(2), 367–384.",
    "knha": "Knapp, G., & Hartung, J. (2003). Improved tests for a random effects "
    "meta-regression with a single covariate. Statistics in Medicine, 22(17), 2693–2710.",
    "three-level": "Konstantopoulos, S. (2011). Fixed effects and variance components "
    "estimation in three-level meta-analysis. Research Synthesis Methods, 2(1), 61–76.",
    "cheung": "Cheung, M. W.-L. (2014). Modeling dependent effect sizes with three-level "
    "meta-analyses: A structural equation modeling approach. Psychological Methods, 19(2), "
    "211–229.",
    "qprofile": "Viechtbauer, W. (2007). Confidence intervals for the amount of heterogeneity "
    "in meta-analysis. Statistics in Medicine, 26(1), 37–52.",
    "I2": "Higgins, J. P. T., & Thompson, S. G. (2002). Quantifying heterogeneity in a "
    "meta-analysis. Statistics in Medicine, 21(11), 1539–1558.",
    "egger": "Egger, M., Davey Smith, G., Schneider, M., & Minder, C. (1997). Bias in "
    "meta-analysis detected by a simple, graphical test. BMJ, 315(7109), 629–634.",
    "begg": "Begg, C. B., & Mazumdar, M. (1994). Operating characteristics of a rank "
    "correlation test for publication bias. Biometrics, 50(4), 1088–1101.",
    "trimfill": "Duval, S., & Tweedie, R. (2000). Trim and fill: A simple funnel-plot-based "
    "method of testing and adjusting for publication bias in meta-analysis. Biometrics, "
    "56(2), 455–463.",
    "petpeese": "Stanley, T. D., & Doucouliagos, H. (2014). Meta-regression approximations to "
    "reduce publication selection bias. Research Synthesis Methods, 5(1), 60–78.",
    "contour": "Peters, J. L., Sutton, A. J., Jones, D. R., Abrams, K. R., & Rushton, L. "
    "(2008). Contour-enhanced meta-analysis funnel plots help distinguish publication bias "
    "from other causes of asymmetry. Journal of Clinical Epidemiology, 61(10), 991–996.",
    "che": "Pustejovsky, J. E., & Tipton, E. (2022). Meta-analysis with robust variance "
    "estimation: Expanding the range of working models. Prevention Science, 23(3), 425–438.",
    "cr2": "Tipton, E. (2015). Small sample adjustments for robust variance estimation with "
    "meta-regression. Psychological Methods, 20(3), 375–393.",
    "htz": "Pustejovsky, J. E., & Tipton, E. (2018). Small-sample methods for cluster-robust "
    "variance estimation and hypothesis testing in fixed effects models. Journal of Business "
    "& Economic Statistics, 36(4), 672–683.",
    "ptr": "Del Re, A. C., Flückiger, C., Horvath, A. O., Symonds, D., & Wampold, B. E. "
    "(2012). Therapist effects in the therapeutic alliance–outcome relationship: A "
    "restricted-maximum likelihood meta-analysis. Clinical Psychology Review, 32(7), 642–649.",
    **BIAS_REFERENCES,
    **WILD_REFERENCES,
}

ESTIMATOR_NAMES = {
    "REML": "restricted maximum likelihood (REML)",
    "ML": "maximum likelihood (ML)",
    "DL": "the DerSimonian–Laird estimator (DL)",
    "PM": "the Paule–Mandel estimator (PM)",
    "HE": "the Hedges estimator (HE)",
    "SJ": "the Sidik–Jonkman estimator (SJ)",
    "EE": "an equal-effects model (no heterogeneity estimated)",
}


def _methods(
    run: AnalysisRun,
    provenance: Provenance,
    cited: list[str],
    robust: RobustResult | None = None,
) -> list[str]:
    res, settings = run.result, run.settings
    structure, rho = fitted_structure(run), fitted_rho(run)
    effect = (
        "Correlations were transformed to Fisher's z for analysis (sampling variance "
        "1 / (n − 3)) and transformed back to r for reporting."
        if provenance.effect_size.startswith("Fisher")
        else "Effect sizes and their sampling variances were analysed as given."
    )
    if res.is_three_level:
        model = (
            f"A three-level meta-analytic model (effect sizes nested in studies; Konstantopoulos, "
            f"2011; Cheung, 2014) was fitted to {res.k} effect sizes from {res.n_studies} studies"
        )
        cited += ["three-level", "cheung"]
        if rho is not None:
            model += (
                ", with the sampling errors of effect sizes from the same study assumed to "
                f"correlate with ρ = {rho:g} (correlated-and-hierarchical-effects working "
                "model; Pustejovsky & Tipton, 2022)"
            )
            cited.append("che")
    else:
        kind = "equal-effects" if settings.method == "EE" else "random-effects"
        if structure == AGGREGATED:
            combined = int(run.data["ki"].sum()) if "ki" in run.data.columns else None
            model = (
                "Because studies contributed several effect sizes, each study's effect sizes "
                + (f"({combined} in all) " if combined else "")
                + "were first aggregated to one inverse-variance weighted effect, assuming a "
                f"sampling correlation of ρ = {rho:g} between effect sizes of the same study "
                "(compound symmetry; Pustejovsky & Tipton, 2022); a two-level "
                f"{kind} model was fitted to the {res.k} study effects"
            )
            cited.append("che")
        elif structure == INDEPENDENT:
            model = (
                f"A two-level {kind} model was fitted to {res.k} effect sizes, treating effect "
                "sizes from the same study as independent (this overstates the precision of "
                "the estimates)"
            )
        else:
            model = f"A two-level {kind} model was fitted to {res.k} effect sizes"
    estimator = ESTIMATOR_NAMES[settings.method]
    if settings.method in ("REML", "ML"):
        estimator += " (Viechtbauer, 2005)"
    elif settings.method in ("DL", "PM", "HE", "SJ"):
        estimator += {
            "DL": " (DerSimonian & Laird, 1986)",
            "PM": " (Paule & Mandel, 1982)",
            "HE": " (Hedges & Olkin, 1985)",
            "SJ": " (Sidik & Jonkman, 2005)",
        }[settings.method]
    cited.append(settings.method)
    if settings.test == "t":
        if res.is_three_level:
            test = f"Coefficients were tested with t tests on k − p = {res.ddf} degrees of freedom."
        else:
            test = (
                "Coefficients were tested with the Knapp and Hartung (2003) adjustment "
                f"(t and F tests on {res.ddf} degrees of freedom)."
            )
            cited.append("knha")
    else:
        test = "Coefficients were tested with z tests."
    if robust is not None and robust.method == "CR2":
        # Under CR2 every reported test is the robust one: no model-based test is described.
        test = (
            "Coefficients were tested with t tests on cluster-robust (CR2) standard errors "
            "with Satterthwaite degrees of freedom."
        )
    sentences = [
        f"Data: {provenance.dataset_title} ({provenance.source}; {res.k} effect sizes analysed"
        + (f"; filter: {provenance.filter}" if run.settings.filters else "")
        + "). "
        + effect,
        f"{model}, with variance components estimated by {estimator}. {test}",
    ]
    if robust is not None:
        sentences.append(
            f"Inference used cluster-robust standard errors ({robust.method}, clustered by "
            f"{robust.cluster or 'study'}, {robust.n_clusters} clusters) with Satterthwaite "
            "degrees of freedom (Tipton, 2015); moderators were tested with the HTZ test "
            "(Pustejovsky & Tipton, 2018)."
            if robust.method == "CR2"
            else f"Inference used cluster-robust standard errors ({robust.method}, clustered "
            f"by {robust.cluster or 'study'}, {robust.n_clusters} clusters) on "
            f"{robust.n_clusters} − p degrees of freedom."
        )
        if robust.method == "CR2":
            cited += ["cr2", "htz"]
    if provenance.moderators:
        sentences.append(
            "Moderators entered the model as "
            + "; ".join(provenance.moderators)
            + ". Categorical moderators were dummy-coded against their reference level; "
            + (
                "the HTZ test tests all moderator coefficients together"
                if robust is not None and robust.method == "CR2"
                else "QM tests all moderator coefficients together"
            )
            + ", and pseudo-R² is the proportional "
            "reduction of the total heterogeneity against the model without moderators."
        )
        if run.ptr_column:
            cited.append("ptr")
    if not res.is_three_level and settings.method != "EE":
        sentences.append(
            "The confidence interval of τ² is the Q-profile interval (Viechtbauer, 2007); "
            "I² follows Higgins and Thompson (2002)."
        )
        cited += ["qprofile", "I2"]
    sentences.append(
        "Small-study effects were examined with a contour-enhanced funnel plot (Peters et al., "
        "2008), Egger's regression test (Egger et al., 1997), the rank correlation test (Begg "
        "& Mazumdar, 1994), trim-and-fill (Duval & Tweedie, 2000) and PET-PEESE (Stanley & "
        "Doucouliagos, 2014)."
    )
    cited += ["contour", "egger", "begg", "trimfill", "petpeese"]
    sentences.append(
        f"Analyses used {provenance.engine}, whose results agree with the R package metafor "
        "(Viechtbauer, 2010) on the same model; a script reproducing them in R is available."
    )
    cited.append("metafor")
    return [" ".join(sentences[:2]), " ".join(sentences[2:])]


def _pooled_sentence(run: AnalysisRun, on_r: bool) -> str:
    """The pooled effect, its CI, PI and test under the run's inference (under CR2: robust
    se, t on the estimate's own Satterthwaite df, as the Overview shows)."""
    pooled = run.result
    pred = run.predict(transform="r" if on_r else None).iloc[0]
    level = f"{pooled.level:.0%}"
    digits = 2 if on_r else 3
    value = r_text if on_r else (lambda v: format_number(v, digits))
    name = "r" if on_r else "estimate"
    text = (
        f"The pooled effect was {name} = {value(pred['pred'])}, {level} CI "
        f"[{value(pred['ci_lb'])}, {value(pred['ci_ub'])}]"
    )
    if math.isfinite(pred["pi_lb"]):
        text += f", with a {level} prediction interval of [{value(pred['pi_lb'])}, {value(pred['pi_ub'])}]"
    row = run.inference_table.iloc[0]
    symbol = stat_symbol(pooled) if run.robust is None else f"t({format_number(row['df'], 1)})"
    text += (
        f" ({symbol} = {format_number(row['statistic'], 2)}, "
        f"{format_p(row['pval'])}; k = {pooled.k}"
        + (f", {pooled.n_studies} studies" if pooled.is_three_level else "")
        + ")."
    )
    return text


def _heterogeneity_sentence(res: MetaResult, label: str, caution: str | None = None) -> str:
    text = _heterogeneity_numbers(res, label)
    if caution:
        text += (
            f" These heterogeneity estimates cannot be trusted: {caution}; they are given for "
            "completeness only."
        )
    return text


def _heterogeneity_numbers(res: MetaResult, label: str) -> str:
    q = f"Q({res.QE_df}) = {format_number(res.QE, 2)}, {format_p(res.QE_pval)}"
    if res.is_three_level:
        s = res.sigma2
        return (
            f"Heterogeneity{label}: σ² between studies = {format_number(s['study'], 4)}, σ² within "
            f"studies = {format_number(s['es'], 4)}; I² = {format_number(res.I2, 1)}% in total "
            f"({format_number(res.I2_levels['study'], 1)}% between and "
            f"{format_number(res.I2_levels['es'], 1)}% within studies); {q}."
        )
    if res.method == "EE":
        return f"Heterogeneity{label}: I² = {format_number(res.I2, 1)}%; {q}."
    ci = res.tau2_ci
    interval = f", {res.level:.0%} CI {ci_text(ci[0], ci[1], 4)}" if ci else ""
    return (
        f"Heterogeneity{label}: τ² = {format_number(res.tau2, 4)}{interval}, I² = "
        f"{format_number(res.I2, 1)}%, H² = {format_number(res.H2, 2)}; {q}."
    )


def _regression_sentences(
    run: AnalysisRun, on_r: bool, flags: ModelFlags | None = None
) -> list[str]:
    """The moderator test and the PTR slope under the run's chosen inference (under CR2 the HTZ
    F test and the robust coefficient test, never the model-based ones); a test the ``flags``
    mark is stated with its reason and without a verdict."""
    res = run.result
    if res.p == 1:
        return []
    statistic, df1, df2, pval = run.omnibus
    if run.robust is not None and df2 is not None:
        qm = f"F({df1}, {format_number(df2, 1)}) = {format_number(statistic, 2)}"
    elif df2 is not None:
        qm = f"F({df1}, {df2}) = {format_number(statistic, 2)}"
    else:
        qm = f"QM({df1}) = {format_number(statistic, 2)}"
    name = " (HTZ)" if run.robust is not None else ""
    r2 = (
        f"; the moderators accounted for {format_number(res.R2, 1)}% of the heterogeneity "
        "(pseudo-R²)"
        if res.R2 is not None
        else ""
    )
    caution = flags.omnibus_caution() if flags is not None else None
    if caution:
        out = [
            f"The test of all moderators{name} ({qm}, {format_p(pval)}) cannot be trusted: "
            f"{caution}; it neither shows nor rules out a moderator effect{r2}."
        ]
    else:
        out = [
            f"The moderators together {'were' if pval < 0.05 else 'were not'} significant"
            f"{name} ({qm}, {format_p(pval)}){r2}."
        ]
    column = run.ptr_column
    if column is not None:
        row = run.inference_table.loc[column]
        b, se = format_coefficient(row["estimate"], row["se"])
        scale = "Fisher's z" if on_r else "the effect-size scale"
        unit = (
            "per unit of log PTR" if column == "log_PTR" else "per additional patient per therapist"
        )
        direction = (
            "studies with more patients per therapist showed weaker effects"
            if row["estimate"] < 0
            else "studies with more patients per therapist showed stronger effects"
        )
        symbol = stat_symbol(res) if run.robust is None else f"t({format_number(row['df'], 1)})"
        significant = row["pval"] < 1 - res.level
        coefficient_caution = flags.coefficient_caution(column) if flags is not None else None
        if coefficient_caution:
            verdict = f"this test cannot be trusted ({coefficient_caution})."
        elif significant:
            verdict = f"{direction}."
        else:
            verdict = "the data do not show a reliable change of the effect with PTR."
        out.append(
            f"The PTR slope was b = {b} ({scale}, {unit}), SE = {se}, "
            f"{symbol} = {format_number(row['statistic'], 2)}, {format_p(row['pval'])}, "
            f"{res.level:.0%} CI {ci_text(row['ci_lb'], row['ci_ub'], len(b.split('.')[-1]))}: "
            + verdict
        )
    return out


def draw_png(
    fig: go.Figure, exporter: Callable[[go.Figure, str], bytes]
) -> tuple[bytes | None, str | None]:
    """PNG bytes of a figure, or None and the reason drawing failed (the report says so).

    The figure is drawn with its user text made plain (``plain_figure``: no live tag, no
    template that would pull other text in), as on the pages.
    """
    try:
        return exporter(plain_figure(go.Figure(fig)), "png"), None
    except AnalysisError as error:
        return None, str(error)
    except Exception as error:  # a browser that crashes or times out must not stop the report
        return None, f"the headless browser failed ({type(error).__name__})"


def _forest_caption(fig: go.Figure) -> str:
    """The forest plot's caption, describing the diamond and bar the figure draws: its own
    words for the diamond (a pooled estimate, or a prediction at named moderator values)."""
    meta = fig.layout.meta or {}
    diamond = meta.get("diamond")
    text = "Each row is a study's effect with its confidence interval"
    if diamond is None:  # a figure not drawn by forest_figure: say nothing it may not show
        return text + "."
    text += f"; the diamond is {diamond}"
    if meta.get("prediction_interval"):
        text += ", and the bar below it the prediction interval"
    return text + "."


def build_report(
    run: AnalysisRun,
    pooled: AnalysisRun,
    provenance: Provenance,
    *,
    on_r_scale: bool,
    figures: Mapping[str, go.Figure] | None = None,
    exporter: Callable[[go.Figure, str], bytes] | None = None,
    robust: RobustResult | None = None,
    flags: ModelFlags | None = None,
    pooled_flags: ModelFlags | None = None,
    bias: PublicationBias | None = None,
    comparison: ModelComparison | None = None,
    wild_bootstrap: Mapping[str, WildBootstrapResult] | None = None,
) -> Report:
    """The report of one analysis; ``pooled`` is the same analysis without moderators.

    ``robust``: cluster-robust inference on ``run.result`` shown with it (methods sentence
    and a table of the robust coefficients; under CR2 no model-based test is reported).
    ``flags`` and ``pooled_flags`` (``AnalysisState``): tests that cannot be trusted are stated
    with their reason and without a verdict, and marked in the tables. ``bias``: the pooled
    model's selection model and fail-safe N (``publication_bias``): a Methods sentence, and
    the bias paragraph closes with them and the Publication bias page's verdict.
    ``comparison``: the model comparison table of ``run`` (``model_comparison``), as a table.
    ``wild_bootstrap``: the Moderators page's cluster wild bootstrap tests of ``run`` (label ->
    result): a Methods sentence with its citation and a Results sentence per test.

    ``figures`` maps "forest", "funnel", "ptr" to plotly figures; each is drawn as PNG by
    ``exporter`` (default :func:`alliance_core.figures.export_figure`), and a figure that
    cannot be drawn is replaced by a sentence saying so.
    """
    if exporter is None:
        exporter = export_figure
    cited: list[str] = []
    methods = _methods(run, provenance, cited, robust)
    res = run.result
    results = [
        _pooled_sentence(pooled, on_r_scale)
        + " "
        + _heterogeneity_sentence(
            pooled.result,
            " without moderators",
            pooled_flags.heterogeneity_caution() if pooled_flags is not None else None,
        ),
    ]
    regression = _regression_sentences(run, on_r_scale, flags)
    if regression:
        regression.append(
            _heterogeneity_sentence(
                res,
                " remaining with the moderators",
                flags.heterogeneity_caution() if flags is not None else None,
            )
        )
        results.append(" ".join(regression))
    if wild_bootstrap:
        methods.append(wild_methods(wild_bootstrap, cited))
        results.append(wild_sentences(wild_bootstrap))
    if bias is not None:
        methods.append(bias_methods(bias, cited))
        results.append(bias_paragraph(bias, on_r_scale, pooled_flags))
    else:
        results.append(
            " ".join(text for _, text in bias_readings(pooled.result, on_r_scale))
            + " Funnel asymmetry can also come from true differences between small and large "
            "studies."
        )
    tables = []
    if res.p > 1 and robust is None:
        tables.append(regression_table(run, len(tables) + 1, on_r_scale, flags))
    if robust is not None:
        tables.append(robust_table(run, robust, len(tables) + 1, on_r_scale, flags))
    tables.append(heterogeneity_table(res, len(tables) + 1, on_r_scale))
    tables.extend(marginal_means_tables(run, len(tables) + 1, on_r_scale, robust, flags))
    if comparison is not None:
        tables.append(comparison_table(comparison, len(tables) + 1))
    drawn = []
    captions = {
        "forest": ("Forest plot", ""),  # its caption is read from the figure drawn
        "funnel": (
            "Contour-enhanced funnel plot",
            "Effect sizes against their standard errors; shaded regions mark p < .10, .05 and .01.",
        ),
        "ptr": (
            "Effect by patient–therapist ratio",
            "Bubbles are effect sizes (area by weight); the line is the model's prediction "
            "with its confidence and prediction bands.",
        ),
    }
    for key, fig in (figures or {}).items():
        title, caption = captions.get(key, (key, ""))
        if key == "forest":
            caption = _forest_caption(fig)
        png, problem = draw_png(fig, exporter)
        drawn.append(
            Figure(len(drawn) + 1, title, f"{caption} {provenance.caption()}", png, problem)
        )
    warnings = []
    if any(f.png is None for f in drawn):
        warnings.append(
            "Some figures could not be drawn on this server (no headless browser for the PNG "
            "export); their places say so. The dashboard's figure downloads offer them as "
            "interactive HTML."
        )
    references = sorted({REFERENCES[key] for key in cited if key in REFERENCES})
    return Report(
        title="Meta-analysis report: " + provenance.dataset_title,
        notice=SIMULATED_NOTICE if provenance.simulated else None,
        methods=tuple(methods),
        results=tuple(results),
        tables=tuple(tables),
        figures=tuple(drawn),
        provenance=tuple(provenance.items()),
        references=tuple(references),
        warnings=tuple(warnings),
    )


def state_report(
    state: AnalysisState,
    provenance: Provenance,
    *,
    figures: Mapping[str, go.Figure] | None = None,
    exporter: Callable[[go.Figure, str], bytes] | None = None,
    steps=THREE_PSM,
    bias: PublicationBias | None = None,
    comparison: ModelComparison | None = None,
    wild_bootstrap: Mapping[str, WildBootstrapResult] | None = None,
) -> Report:
    """The report of one dashboard state: its pooled and its sidebar model, under the state's
    inference, with its flags (the report reads the state and refits nothing), and the
    pooled model's publication-bias results: ``bias`` when given (the page's), else the
    selection model with cuts ``steps`` (the Publication bias page's choice; the 3PSM by
    default) and the fail-safe Ns; ``comparison``: the Moderators page's comparison table of
    the sidebar model, when it was asked for (it refits the neighbours); ``wild_bootstrap``:
    the page's cluster wild bootstrap tests of the sidebar model that were run."""
    run = state.model
    if bias is None:
        bias = state_publication_bias(state, steps)
    return build_report(
        run,
        state.pooled,
        provenance,
        on_r_scale=state.on_r_scale,
        figures=figures,
        exporter=exporter,
        robust=run.robust,
        flags=state.flags_of(run),
        pooled_flags=state.pooled_flags,
        bias=bias,
        comparison=comparison,
        wild_bootstrap=wild_bootstrap,
    )
