"""Overview: the average effect with its intervals, how much effects vary, and what that means."""

import streamlit as st

from alliance_core.formatting import escape_markdown
from alliance_core.model.nesting import display_name
from alliance_core.wording import reading
from alliance_core.wording.common_language import r_in_words
from alliance_core.wording.glossary import define
from alliance_core.wording.look_for import look_for
from pages._ui import downloads, loading, projector, render, sidebar, tables

ctx = sidebar.context()
if render.page_header("Overview", ctx):
    # The pooled estimate and the total heterogeneity come from the model without moderators
    # (same data, filters, model and estimator); the moderators' part is summarised below it.
    # One state holds both models; a moderator model that cannot be fitted leaves the pooled
    # model standing (its reason is shown below the pooled numbers).
    current = loading.state(ctx)
    pooled_run = current.pooled
    run = current.moderated if current.moderated is not None else pooled_run
    pooled = pooled_run.result
    res = run.result
    on_r = ctx.data.correlations
    words = reading.effect_words(ctx.data.measure)
    # Intervals of the chosen inference (CR2: robust se, t on the prediction's own df).
    band = pooled_run.band_inference()
    pred = pooled_run.predict(transform="r" if on_r else None).iloc[0]
    level = f"{pooled.level:.0%}"
    symbol = words.symbol or "effect"

    stage = projector.stage_slot()  # on a projector the key numbers come first
    render.model_statement(pooled_run, pooled=True)
    render.inference_statement(pooled_run)
    if current.moderator_problem:
        st.warning(
            "The model with the chosen moderators cannot be fitted: "
            f"{escape_markdown(current.moderator_problem)} The pooled model below does not "
            "need the moderators.",
            icon=":material/warning:",
        )
    if res.p > 1:
        names = ", ".join(display_name(m) for m in run.moderator_columns)
        render.caption(
            ":material/compare_arrows: The sidebar's model adds the moderators "
            f"{escape_markdown(names)}: the moderator test and the PTR reading below come from "
            "it, and the Moderators & PTR page shows it in full. The pooled effect and the "
            "heterogeneity here are those of the same model without moderators, as a "
            "meta-analysis reports first."
        )

    with projector.stage(stage, look_for("overview"), fit="content"):
        cols = st.columns(5)
    cols[0].metric(
        f"Pooled {symbol}",
        tables.fmt_num(pred["pred"]),
        help=f"The estimated mean of the true {words.noun}s (the model without moderators). "
        + define("r"),
    )
    cols[1].metric(
        f"{level} confidence interval",
        tables.fmt_interval(pred["ci_lb"], pred["ci_ub"]),
        help=define("Confidence interval"),
    )
    cols[2].metric(
        f"{level} prediction interval",
        tables.fmt_interval(pred["pi_lb"], pred["pi_ub"]),
        help=define("Prediction interval"),
    )
    if "ki" in pooled_run.data.columns and not pooled.is_three_level:
        # One aggregated effect per study: k counts studies; say how many effect sizes went in.
        cols[3].metric(
            "Effect sizes (combined per study)",
            f"{int(pooled_run.data['ki'].sum()):,}",
            help="Each study's effect sizes were combined into one before the model was fitted.",
        )
        cols[4].metric("Studies (k)", f"{pooled.k:,}")
    else:
        cols[3].metric("Effect sizes (k)", f"{pooled.k:,}")
        cols[4].metric("Studies", f"{pooled.n_studies:,}")
    if on_r:
        render.markdown(r_in_words(pred["pred"]))
        render.caption(
            "Correlations are pooled as Fisher's z = atanh(r) and shown back as r; the "
            "interval limits are transformed the same way."
        )

    st.subheader("In plain words")
    render.reading_text(
        reading.pooled_effect(pooled, on_r_scale=on_r, measure=ctx.data.measure, band=band), ctx
    )
    # Words follow flags: a test the state flags is never called (non-)significant. The
    # readings are the state's (the pages that show only their cautions read the same ones).
    for item in current.readings():
        render.reading_text(item.text, ctx)
    if res.p > 1:
        st.page_link(
            ctx.pages["moderators"],
            label="The moderators in detail: Moderators & PTR",
            icon=":material/tune:",
        )

    st.subheader("Heterogeneity")
    render.table(tables.heterogeneity_table(pooled).set_index("Statistic"))
    terms = ("σ²" if pooled.is_three_level else "τ²", "I²", "QE")
    render.caption(" ".join(f"**{term}**: {define(term)}" for term in terms))

    if res.p > 1:
        render.caption(
            "Without moderators. With the chosen moderators, the heterogeneity left over is "
            f"I² = {res.I2:.1f}% (Moderators & PTR page)."
        )
    details = loading.variance_details(ctx, pooled_run)
    if details.intervals is not None:
        render.markdown("**How uncertain are the variance components?**")
        render.table(
            tables.variance_interval_table(details.intervals, pooled.level).set_index("Component")
        )
        method = "profile likelihood" if pooled.is_three_level else "Q-profile"
        render.caption(
            f"Confidence intervals by {method} (as metafor's confint), without moderators."
        )
    elif details.intervals_problem:
        render.caption(f":material/info: {escape_markdown(details.intervals_problem)}")
    if details.within_study is not None:
        render.reading_text(reading.within_study_heterogeneity(details.within_study), ctx)
    elif details.within_study_problem:
        render.caption(f":material/info: {escape_markdown(details.within_study_problem)}")
    render.analysis_notes(run)

    st.subheader("Downloads")
    if res.p > 1:
        render.caption(
            "The results file holds both models this page shows, the pooled model first; the "
            "“model” column says which row belongs to which."
        )
    downloads.result_downloads(run, ctx, pooled=pooled_run)
    render.robust_download_note(run)
