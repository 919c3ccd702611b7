"""Methods: the models, formulas and references behind the numbers, and the data card."""

import pandas as pd
import streamlit as st

from alliance_core.data import datasets
from alliance_core.formatting import escape_markdown
from alliance_core.handover import reproduce
from alliance_core.wording.glossary import glossary_markdown
from alliance_core.wording.reading import effect_words
from pages._ui import downloads, loading, render, sidebar, upload_form

ctx = sidebar.context()
render.page_header("Methods", ctx, needs_data=False)

# The effect sizes of the data the sidebar chose (without data: the alliance correlations the
# dashboard is built for); the formulas below name them z for Fisher's z and y otherwise.
on_fisher_z = ctx.data is None or ctx.data.correlations
y = "z" if on_fisher_z else "y"
if on_fisher_z:
    st.subheader("Effect sizes: Fisher's z")
    st.markdown(
        "A correlation's sampling distribution is skewed near ±1, so each correlation r from n "
        "patients is analysed as Fisher's z, whose sampling variance depends only on n. Results "
        "are transformed back to r for display."
    )
    st.latex(
        r"z_i = \operatorname{atanh}(r_i) = \tfrac12 \ln\frac{1 + r_i}{1 - r_i}, \qquad v_i = \frac{1}{n_i - 3}, \qquad r = \tanh(z)"
    )
else:
    words = effect_words(ctx.data.measure)
    symbol = f" ({words.symbol})" if words.symbol else ""
    st.subheader(f"Effect sizes: {words.noun}s as given")
    st.markdown(
        f"The effect sizes of this table are {words.noun}s{symbol}, each with its sampling "
        "variance vᵢ from the table. They are analysed and shown on that scale as they "
        "are: no transformation, and no Fisher's z (which is for correlations)."
    )
    st.latex(r"y_i = \text{effect size } i, \qquad v_i = \operatorname{Var}(y_i \mid \theta_i)")

st.subheader("Two-level random-effects model")
st.markdown(
    "Every effect size comes from its own study. The true effects vary around an average μ "
    "with variance τ² (heterogeneity); each observed effect adds sampling error with its known "
    "variance vᵢ."
)
st.latex(y + r"_i = \mu + u_i + e_i, \qquad u_i \sim N(0, \tau^2), \qquad e_i \sim N(0, v_i)")

st.subheader("Three-level model: effect sizes nested in studies")
st.markdown(
    "Many studies report several effect sizes (in the alliance literature: patient- and "
    "therapist-rated alliance, several outcomes). These share the study's sample and design, "
    "so they are not independent. The "
    "three-level model gives each study a true effect and lets its effect sizes vary around it "
    "(metafor: `rma.mv(yi, vi, random = ~ 1 | study/es)`)."
)
st.latex(
    y + r"_{ij} = \mu + u_i + w_{ij} + e_{ij}, \quad u_i \sim N(0, \sigma^2_{\text{study}}), \quad "
    r"w_{ij} \sim N(0, \sigma^2_{\text{es}}), \quad e_{ij} \sim N(0, v_{ij})"
)

st.subheader("Meta-regression (moderators)")
st.markdown(
    "With moderators, the average μ becomes a linear predictor: numeric moderators enter as "
    "they are, categorical ones as one indicator per level beyond the reference level. "
    "**QE** tests whether the effects vary more than sampling error explains once the "
    "moderators are accounted for (residual heterogeneity); **QM** tests whether all moderator "
    "coefficients are zero. **R²** is the share of heterogeneity ($\\tau^2$, or "
    "$\\sigma^2_{study} + \\sigma^2_{es}$) that the moderators account for compared with the "
    "model without them."
)
st.latex(y + r"_i = \mathbf{x}_i^\top \boldsymbol\beta + u_i + e_i")

st.subheader("Estimators and tests")
st.markdown(
    "- **REML** (restricted maximum likelihood) estimates the variance components; it is the "
    "default of metafor and of the published alliance meta-analyses. **ML** maximises the full "
    "likelihood (needed to compare models with different moderators by likelihood). The "
    "two-level model also offers the moment and other estimators **DL** (DerSimonian–Laird), "
    "**PM** (Paule–Mandel), **HE** (Hedges), **SJ** (Sidik–Jonkman), and **EE**, an "
    "equal-effects model that assumes no heterogeneity at all.\n"
    "- **z tests** treat the estimated variance components as known. The **Knapp–Hartung** "
    "adjustment (two-level) rescales the standard errors and uses t and F distributions with "
    "k − p degrees of freedom; the three-level model uses t tests on k − p degrees of freedom. "
    "Both give wider, more honest intervals when there are few studies."
)
st.markdown("**Heterogeneity in percent** (ṽ: a typical sampling variance, as in metafor):")
st.latex(
    r"I^2 = \frac{\hat\tau^2}{\hat\tau^2 + \tilde v}, \qquad "
    r"I^2_{\text{study}} = \frac{\hat\sigma^2_{\text{study}}}{\hat\sigma^2_{\text{study}} + "
    r"\hat\sigma^2_{\text{es}} + \tilde v}, \qquad "
    r"\text{prediction interval: } \hat\mu \pm c \sqrt{\operatorname{SE}(\hat\mu)^2 + \hat\tau^2}"
)

st.subheader("Dependent effect sizes: CHE working model, CR2 inference, likelihood-ratio test")
st.markdown(
    "Effect sizes of one study come from the same patients, so their **sampling errors are "
    "correlated** too, not only their true effects. Studies rarely report that correlation ρ, "
    "so the **correlated-and-hierarchical-effects (CHE)** working model assumes one value for "
    "every pair of effect sizes in a study (0.6–0.8 is the usual assumption; the sidebar sets "
    "it, the Sensitivity page shows the PTR result across ρ = 0 to 0.8). ρ = 0 is the "
    "three-level model above. As metafor: `V <- vcalc(vi, cluster = study, obs = es, rho = ρ)`, "
    "then `rma.mv(yi, V, random = ~ 1 | study/es)`."
)
st.latex(
    r"\mathbf "
    + y
    + r"_i = \mathbf X_i \boldsymbol\beta + u_i \mathbf 1 + \mathbf w_i + \mathbf e_i,"
    r"\quad \operatorname{Var}(\mathbf e_i)_{jl} = \rho \sqrt{v_{ij} v_{il}}\ (j \ne l),"
    r"\quad \mathbf M_i = \sigma^2_{\text{study}} \mathbf J + \sigma^2_{\text{es}} \mathbf I + "
    r"\mathbf V_i"
)
st.markdown(
    "Because ρ is a guess, the model's own standard errors are only right if the guess (and "
    "the rest of the model) is right. **Cluster-robust (CR2) inference** instead estimates "
    "the variance of the coefficients from how much the studies' residuals actually vary, "
    "study by study, so it stays valid when the working model is wrong. The CR2 adjustment "
    "$\\mathbf A_i$ corrects the small-sample bias of the plain sandwich, and each test uses "
    "t with **Satterthwaite degrees of freedom**; tests of several coefficients use the "
    '**HTZ** F test (clubSandwich `coef_test(vcov = "CR2")`, `Wald_test(test = "HTZ")`; '
    "metafor `robust(fit, cluster = study, clubSandwich = TRUE)`). With the aggregated "
    "two-level model or the independent one, the clusters are the studies too. A prediction "
    "(the forest diamond, a point of the PTR curve, the change in r between two PTR values) "
    "is a combination $c^\\top\\hat\\beta$ of the coefficients and gets its own "
    "Satterthwaite df, not one borrowed from a coefficient (clubSandwich `linear_contrast`, "
    "metafor `predict(robust(...), newmods)`); its prediction interval adds the model's "
    "variance components to the robust SE², with t on that df."
)
st.latex(
    r"\mathbf V^{CR2} = \mathbf B \Big(\sum_i \mathbf X_i^\top \mathbf W_i \mathbf A_i "
    r"\mathbf r_i \mathbf r_i^\top \mathbf A_i \mathbf W_i \mathbf X_i\Big) \mathbf B, \quad "
    r"\mathbf B = \Big(\sum_i \mathbf X_i^\top \mathbf W_i \mathbf X_i\Big)^{-1}, \quad "
    r"\mathbf W_i = \mathbf M_i^{-1}, \quad \mathbf A_i = \mathbf M_i^{1/2}"
    r"\big(\mathbf M_i^{1/2}(\mathbf M_i - \mathbf X_i \mathbf B \mathbf X_i^\top)"
    r"\mathbf M_i^{1/2}\big)^{-1/2}\mathbf M_i^{1/2}"
)
st.markdown(
    "When a coefficient's Satterthwaite df fall below 4, or fewer than 10 studies are left, "
    "robust p-values are not trustworthy (Tipton 2015); the dashboard says so where it "
    "happens. A large gap between model-based and CR2 standard errors is itself a sign that "
    "the working model is off.\n\n"
    "**Is there heterogeneity within studies?** The Overview page compares the three-level "
    "model with the same model whose within-study variance $\\sigma^2_{\\text{es}}$ is held at "
    "0 by a **likelihood-ratio test** (metafor `anova(full, reduced)`, reduced fitted with "
    "`sigma2 = c(NA, 0)`). Because a variance cannot be negative, the χ²(1) p-value is "
    "conservative. The variance components' **confidence intervals** are profile-likelihood "
    "intervals for the three-level model and Q-profile intervals for τ² (metafor `confint`)."
)
st.latex(
    r"\text{LRT} = 2\big(\ell_{\text{full}} - \ell_{\sigma^2_{\text{es}} = 0}\big) "
    r"\sim \chi^2_1 \text{ (conservatively)}"
)
st.markdown(
    "References: Pustejovsky, J. E., & Tipton, E. (2022). Meta-analysis with robust variance "
    "estimation: Expanding the range of working models. *Prevention Science, 23*, 425–438. "
    "Tipton, E. (2015). Small sample adjustments for robust variance estimation with "
    "meta-regression. *Psychological Methods, 20*, 375–393. Hedges, L. V., Tipton, E., & "
    "Johnson, M. C. (2010). Robust variance estimation in meta-regression with dependent "
    "effect size estimates. *Research Synthesis Methods, 1*, 39–65. Viechtbauer, W. (2005). "
    "Bias and efficiency of meta-analytic variance estimators in the random-effects model. "
    "*Journal of Educational and Behavioral Statistics, 30*, 261–293. Viechtbauer, W. (2010). "
    "Conducting meta-analyses in R with the metafor package. *Journal of Statistical "
    "Software, 36*(3), 1–48. Konstantopoulos, S. (2011). Fixed effects and variance "
    "components estimation in three-level meta-analysis. *Research Synthesis Methods, 2*, "
    "61–76."
)

st.subheader("Publication bias: step-function selection models and fail-safe N")
st.markdown(
    "A selection model (Vevea & Hedges, 1995) lets the chance that an effect size is published "
    "depend on its one-sided p-value $p_i = 1 - \\Phi(y_i / \\sqrt{v_i})$. Cuts "
    "$0 < a_1 < \\dots < 1$ split the p-values into intervals with relative weights "
    "$\\delta_1 = 1$ (the most significant), $\\delta_2, \\dots$; an observed effect size "
    "then has density $\\delta_{g(i)}\\,\\phi(y_i; \\mu_i, v_i + \\tau^2) / A_i$, where "
    "$A_i = \\sum_j \\delta_j P_{ij}$ and $P_{ij}$ is the probability of interval $j$ "
    "without selection. Maximum likelihood gives the mean (and moderators) adjusted for "
    "selection, and a likelihood-ratio test of no selection (all $\\delta_j = 1$). The "
    "**3PSM** has one cut at .025 (significant or not); **two cuts** (.025 and .5) also "
    "separate effects in the unexpected direction. It fails when an interval holds no effect "
    "size, and a weight that runs to its bound (0 or 100) is not identified: the page then "
    "says so. The model assumes normally distributed true effects and selection on the "
    "p-value alone. For dependent effect sizes (the three-level model) the same likelihood is "
    "summed over all effect sizes as a composite likelihood with one $\\tau^2$, and the "
    "standard errors are cluster-robust (sandwich) by study (Pustejovsky, Citkowicz & Joshi, "
    "2025); a cluster bootstrap gives percentile intervals. Independent effect sizes agree "
    "with metafor's `selmodel`, dependent ones with the R package metaselection.\n\n"
    "The **fail-safe N** (Rosenthal, 1979; Orwin, 1983; Rosenberg, 2005) counts the "
    "unpublished null results that would overturn a finding. It assumes they average exactly "
    "zero, ignores heterogeneity and dependence, and grows with the number of effect sizes "
    "whatever the bias: it is neither a test of publication bias nor a correction for it.\n\n"
    "References: Vevea, J. L., & Hedges, L. V. (1995). A general linear model for estimating "
    "effect size in the presence of publication bias. *Psychometrika, 60*, 419–435. "
    "Pustejovsky, J. E., Citkowicz, M., & Joshi, M. (2025). Estimation and inference for step-"
    "function selection models in meta-analysis with dependent effects. Rosenthal, R. (1979). "
    "The file drawer problem and tolerance for null results. *Psychological Bulletin, 86*, "
    "638–641. Orwin, R. G. (1983). A fail-safe N for effect size in meta-analysis. *Journal "
    "of Educational Statistics, 8*, 157–159. Rosenberg, M. S. (2005). The file-drawer problem "
    "revisited: A general weighted method for calculating fail-safe numbers in meta-analysis. "
    "*Evolution, 59*, 464–468."
)

st.markdown(
    "**Small-study tests under dependence.** Egger's regression test (Egger et al., 1997) and "
    "PET-PEESE (Stanley & Doucouliagos, 2014) refit the model of the analysis with the "
    "standard error (PET, Egger) or the sampling variance (PEESE) as a moderator: for nested "
    "data the three-level CHE model with the analysis's ρ, so that effect sizes of one study "
    "are not counted as independent (Rodgers & Pustejovsky, 2021). Under CR2 their tests are "
    "cluster-robust by study with Satterthwaite df, as clubSandwich's `coef_test`; with fewer "
    "than 10 studies or a robust df below 4 a test is shown but called neither significant nor "
    "non-significant. The rank test and trim-and-fill have no cluster-robust form.\n\n"
    "References: Egger, M., Davey Smith, G., Schneider, M., & Minder, C. (1997). Bias in "
    "meta-analysis detected by a simple, graphical test. *BMJ, 315*, 629–634. Stanley, T. D., & "
    "Doucouliagos, H. (2014). Meta-regression approximations to reduce publication selection "
    "bias. *Research Synthesis Methods, 5*, 60–78. Rodgers, M. A., & Pustejovsky, J. E. (2021). "
    "Evaluating meta-analytic methods to detect selective reporting in the presence of "
    "dependent effect sizes. *Psychological Methods, 26*, 141–160."
)

st.subheader("Beyond one slope: interactions, marginal means, heterogeneity, comparisons")
st.markdown(
    "**Interactions.** PTR × a categorical moderator (chosen in the sidebar) gives each level "
    "its own PTR slope, coded as metafor's `mods = ~ log_ptr * alliance_rater`: the PTR "
    "coefficient is the reference level's slope, each interaction coefficient a level's "
    "difference from it, and a Wald test asks whether the slopes differ.\n\n"
    "**Marginal means.** The expected effect of each level of a categorical moderator, with "
    "numeric moderators at their means and other categorical ones averaged over how often "
    "their levels occur (population marginal means; Searle, Speed & Milliken, 1980), with a "
    "confidence and a prediction interval; under CR2 each mean is a linear contrast with its "
    "own Satterthwaite df (Pustejovsky & Tipton, 2018).\n\n"
    "**Moderators of heterogeneity.** The location-scale model (Viechtbauer & López-López, "
    "2022) lets the between-study variance depend on PTR, $\\tau^2_i = \\exp(\\alpha_0 + "
    "\\alpha_1 \\mathrm{PTR}_i)$, beside the moderators of the mean; a likelihood-ratio test "
    "compares it with one $\\tau^2$. It needs a two-level model (e.g. the aggregated one) "
    "fitted by ML or REML.\n\n"
    "**Model comparison.** The sidebar's model against its neighbours (each moderator dropped, "
    "each PTR interaction added) by log-likelihood, AIC, BIC and AICc and a likelihood-ratio "
    "test: refitted by ML, since REML likelihoods of models with different moderators cannot "
    "be compared; variance components (each level at 0) are compared by REML.\n\n"
    "**Cluster wild bootstrap.** With few studies the CR2 tests' small df make them "
    "unreliable. The cluster wild bootstrap (Joshi, Pustejovsky & Beretvas, 2022) fits the "
    "model under the null hypothesis, multiplies each study's residuals by one random weight "
    "(Rademacher, or Webb's six-point weights below 10 studies), refits the full model "
    "(variance components included) to every bootstrap sample, and compares the observed Wald "
    "statistic (CR0, or CR2 under CR2 inference) with the refits' statistics; 1,999 "
    "replicates. Given the same weights, every replicate agrees with the R package wildmeta.\n\n"
    "References: Searle, S. R., Speed, F. M., & Milliken, G. A. (1980). Population marginal "
    "means in the linear model: An alternative to least squares means. *The American "
    "Statistician, 34*, 216–221. Pustejovsky, J. E., & Tipton, E. (2018). Small-sample methods "
    "for cluster-robust variance estimation and hypothesis testing in fixed effects models. "
    "*Journal of Business & Economic Statistics, 36*, 672–683. Viechtbauer, W., & "
    "López-López, J. A. (2022). Location-scale models for meta-analysis. *Research Synthesis "
    "Methods, 13*, 697–715. Joshi, M., Pustejovsky, J. E., & Beretvas, S. N. (2022). Cluster "
    "wild bootstrapping to handle dependent effect sizes in meta-analysis with a small number "
    "of studies. *Research Synthesis Methods, 13*, 457–477."
)

st.subheader("The Patient–Therapist Ratio (PTR)")
st.markdown(
    "PTR is the number of patients in a study divided by its number of therapists. With one "
    "therapist treating everyone, all differences in alliance are differences between "
    "patients; with one therapist per patient, therapist and patient differences are fully "
    "mixed. If the therapist's part of the alliance is what drives outcome, studies with a low "
    "PTR (many therapists) should show larger alliance–outcome correlations: a **negative "
    "moderation slope**.\n\n"
    "The relation is not a straight line. In a worked model, alliance $a = u_t + e$ combines "
    "a therapist part $u_t$ (variance $\\sigma^2_u$) and a patient part $e$ (variance "
    "$\\sigma^2_e$), and outcome $y = \\gamma_b u_t + \\gamma_w e + \\varepsilon$. The observed "
    "correlation mixes $\\gamma_b$ and $\\gamma_w$ in proportion to the therapist and patient "
    "variance a study's sample contains, and the therapist share of the observed alliance "
    "variance changes roughly like $1 - 1/T$ for $T$ therapists: steeply for the first few "
    "therapists, then hardly at all. Entering **log PTR** captures this curvature; "
    "the Moderators & PTR page draws the fitted curve on either axis."
)

st.subheader("This analysis as code: metafor (R) and alliance_core (Python)")
with render.shown_errors("The reproduction scripts"):
    if ctx.data is None:
        st.caption(ctx.problem or "Choose data to see the scripts of its analysis.")
    else:
        # The Overview's zips, file for file: the pooled model and the model with moderators,
        # with what the other pages added (publication bias, comparison, wild bootstrap).
        current = loading.state(ctx)
        run = current.moderated if current.moderated is not None else current.pooled
        models, options = downloads.reproduction_inputs(run, ctx, pooled=current.pooled)
        st.markdown(
            "The analysis on screen, written out as a script: the same data, model, estimator, "
            "test, moderators, reference levels, filter and PTR scale, and what the other "
            "pages added (the publication-bias results, the model comparison, the "
            "heterogeneity model, the wild bootstrap tests). These are the scripts of the "
            "downloads **Reproduce in R (zip)** and **Reproduce in Python (zip)** on the "
            "Overview page, which hold them with `data.csv` and the dashboard's results; run "
            "in the unzipped folder, each script ends by checking that it gets the dashboard's "
            "numbers."
        )
        tabs = st.tabs(["R (metafor)", "Python (alliance_core)"])
        for tab, language, script in zip(
            tabs, ("R", "Python"), ("analysis.R", "analysis.py"), strict=True
        ):
            files = reproduce.models_files(models, ctx.data.mapping, language=language, **options)
            with tab:
                if len(models) == 1:
                    st.code(files[script], language=language.lower())
                    continue
                st.caption(
                    f"Two folders, one per model the Overview shows; `{script}` in the "
                    "unzipped folder runs both and counts the numbers that agree."
                )
                for label, *_ in models:
                    what = "Pooled model" if label == "pooled" else "With the moderators"
                    st.markdown(f"**{what}** (`{label}/{script}`)")
                    st.code(files[f"{label}/{script}"], language=language.lower())

st.subheader("Glossary")
st.caption(
    "Every term and column code the dashboard shows, in plain words; the same texts appear on hover."
)
with st.expander("The glossary", expanded=False):
    st.markdown(glossary_markdown())

st.subheader("References")
st.markdown(
    "- Flückiger, C., Del Re, A. C., Wampold, B. E., & Horvath, A. O. (2018). *Psychotherapy*, "
    "55(4), 316–340. 295 independent studies, more than 30,000 patients, three-level REML "
    "meta-analysis; face-to-face therapy r = .278, 95% CI [.256, .299].\n"
    "- Horvath, A. O., Del Re, A. C., Flückiger, C., & Symonds, D. (2011). *Psychotherapy*, "
    "48(1), 9–16. r = .275, k = 190.\n"
    "- Del Re, A. C., Flückiger, C., Horvath, A. O., Symonds, D., & Wampold, B. E. (2012). "
    "*Clinical Psychology Review*, 32, 642–649. REML meta-regression: PTR a significant "
    "moderator, also with controls.\n"
    "- Del Re, A. C., Flückiger, C., Horvath, A. O., & Wampold, B. E. (2021). *Journal of "
    "Consulting and Clinical Psychology*, 89(5), 371–378. Two- and three-level models, k = 152 "
    "studies, 827 effect sizes; PTR remained a significant moderator.\n"
    "- Murphy, R., & Hutton, P. (2018). *Journal of Child Psychology and Psychiatry* "
    "(adolescents). k = 28, r = .29 [.21, .37], I² = 80%; PTR not significant (p = .26 alone, "
    "p = .22 with controls).\n"
    "- Baldwin, S. A., Wampold, B. E., & Imel, Z. E. (2007). *Journal of Consulting and "
    "Clinical Psychology*, 75(6), 842–852. The therapist part of the alliance predicted "
    "outcome, the patient part did not.\n"
    "- Knapp, G., & Hartung, J. (2003). Improved tests for a random effects meta-regression "
    "with a single covariate. *Statistics in Medicine*, 22(17), 2693–2710.\n"
    "- Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package. "
    "*Journal of Statistical Software*, 36(3), 1–48. The reference implementation these "
    "results are tested against."
)

st.subheader("Data card")
data = ctx.data
if ctx.settings is not None and data is not None:
    # The card is a description of the file; numbers in it come from the model the card names
    # in its own heading. Say which model the rest of the dashboard shows, so the two are
    # never read as one.
    rho = f" · ρ = {ctx.settings.rho:g}" if ctx.settings.model != "two-level" else ""
    st.caption(
        ":material/info: Numbers in the card describe the file under the model the card names; "
        f"the sidebar's model, which the other pages show, is: "
        f"{render.describe_settings(ctx.settings)}{rho}"
        # Under CR2 the settings line names the inference already.
        f"{'' if ctx.settings.robust else ' · model-based inference'}."
    )
if data is not None and data.info is not None:
    if data.simulated:
        st.markdown(":orange-badge[:material/science: SIMULATED] These are not real studies.")
    st.markdown(datasets.data_card(data.info.name))
elif data is not None and data.upload is not None:
    view = data.upload
    st.markdown(
        f"**Uploaded file:** {escape_markdown(view.record.name)}  \n"
        f"{escape_markdown(view.uploaded.report.describe())}  \n"
        f"{escape_markdown(view.validation.summary())}"
    )
    roles = {role: getattr(view.mapping, role) for role in upload_form.MAPPING_ROLES}
    roles["moderators"] = ", ".join(view.mapping.moderators) or None
    render.dataframe(
        pd.DataFrame(
            [
                (upload_form.MAPPING_ROLES.get(role, "Moderators"), column)
                for role, column in roles.items()
            ],
            columns=["Role", "Column"],
        ),
        hide_index=True,
        width="content",
    )
else:
    st.caption(escape_markdown(ctx.problem or "No data chosen."))
