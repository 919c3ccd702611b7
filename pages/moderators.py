"""Moderators & PTR: the meta-regression, its tests, and the PTR moderation curve."""

import json
import time

import numpy as np
import streamlit as st

from alliance_core.analyses.marginal_flags import change_caution, mean_cautions
from alliance_core.analyses.model_comparison import model_comparison
from alliance_core.analyses.run import AnalysisRun
from alliance_core.figures import (
    level_curves,
    orchard_figure,
    ptr_curve_figure,
    ptr_slope_readout,
    tau2_curve_figure,
)
from alliance_core.formatting import escape_markdown, format_number
from alliance_core.wording import reading
from alliance_core.wording.common_language import r_in_brief
from alliance_core.wording.glossary import define
from alliance_core.wording.look_for import look_for
from pages._ui import (
    downloads,
    handover_extras,
    loading,
    means_tables,
    projector,
    render,
    sidebar,
    state,
    tables,
    view_link,
)


@st.fragment
def ptr_section(run: AnalysisRun, ctx: loading.Context) -> None:
    """The curve and its what-if profiles: editing them redraws this part only."""
    res = run.result
    band = run.band_inference()
    flags = loading.state(ctx).flags_of(run)
    # On a projector the curve comes first, before its reading and the controls, so that it is
    # whole on the first screen; elsewhere the controls come first, as a reader sets them.
    figure_slot = projector.stage_slot()
    render.reading_text(
        reading.ptr_effect(
            res,
            run.ptr_column,
            coefficients=run.inference_table,
            caution=flags.coefficient_caution(run.ptr_column),
        ),
        ctx,
    )
    left, right = st.columns(2)
    colour_columns = [c for c in ctx.choices.categorical if c in res.data.columns]
    linked_colour = sidebar.take_link_view("colour")
    if linked_colour is not None:
        offered = [view_link.NO_COLOUR, *colour_columns]
        for problem in state.check_view_choice("colour", linked_colour, offered):
            st.warning(escape_markdown(problem), icon=":material/link_off:")
        if linked_colour in offered:
            wanted = None if linked_colour == view_link.NO_COLOUR else linked_colour
            st.session_state["ptr:colour"] = wanted
    color_by = left.selectbox(
        "Colour bubbles by",
        [None, *colour_columns],
        format_func=lambda c: "— one colour —" if c is None else c,
        key="ptr:colour",
    )
    sidebar.write_view({"colour": [color_by] if color_by else None})
    log_axis = right.toggle(
        "Logarithmic PTR axis",
        value=ctx.settings.ptr_scale == "log",
        key="ptr:log_axis",
        help="On a linear axis a log-PTR model draws a curve: the correlation falls fastest "
        "between one and a few patients per therapist.",
    )

    columns = tables.ProfileColumns.of(res, run.ptr_column)
    profiles: list[dict] = []
    if columns.names:
        render.markdown(
            "**What-if profiles**: fill in a row to draw a curve for studies with those values "
            f"(a cell left at “{tables.TYPICAL_VALUE}” holds a numeric moderator at its mean "
            "and a categorical one at its reference level, which need not be the most common "
            "level; rows that set nothing draw nothing)."
        )
        config = {tables.PROFILE_NAME: st.column_config.TextColumn(tables.PROFILE_NAME)}
        for column, levels in columns.categorical.items():
            config[column] = st.column_config.SelectboxColumn(
                column, options=[tables.TYPICAL_VALUE, *levels]
            )
        for column in columns.numeric:
            config[column] = st.column_config.TextColumn(
                column, help=f"A number, or '{tables.TYPICAL_VALUE}' for the mean."
            )
        # The editor starts from the link's profiles (once per set of moderators).
        start_key = "ptr:profiles_start:" + "|".join(columns.names)
        linked_profiles = sidebar.take_link_view("profiles")
        if linked_profiles is not None:
            start, problems = tables.editor_frame_for(linked_profiles, columns)
            st.session_state[start_key] = start
            for problem in problems:
                st.warning(escape_markdown(problem), icon=":material/link_off:")
        edited = st.data_editor(
            st.session_state.get(start_key, columns.empty_editor_frame()),
            num_rows="fixed",
            column_config=config,
            hide_index=True,
            width="stretch",
            # A new set of moderators starts a new, empty editor.
            key="ptr:profiles:" + "|".join(columns.names),
        )
        profiles, notes = tables.profiles_from_rows(edited, columns)
        sidebar.write_view({"profile": view_link.view_query(profiles=profiles)["profile"] or None})
        for note in notes:
            render.caption(f":material/info: {escape_markdown(note)}")
    else:
        render.caption(
            "Add other moderators to compose what-if profiles (e.g. observer-rated alliance)."
        )
    # With PTR x a categorical moderator, each level has its own slope: one curve per level
    # (unless the reader composed profiles of their own).
    curves = level_curves(res, "PTR", prefer=color_by)
    if curves is not None and not profiles:
        profiles = list(curves.profiles)
        render.caption(f":material/stacked_line_chart: {escape_markdown(curves.note())}")
    elif curves is not None:
        render.caption(
            ":material/info: Your what-if profiles are drawn instead of one curve per level of "
            f"{escape_markdown(curves.column)}; clear them to see every level's PTR slope."
        )

    view = (log_axis, color_by, json.dumps(profiles, sort_keys=True, default=str))
    fig = render.figure(
        ("ptr_curve", ctx.data.key, loading.analysis_key(ctx.settings), *view),
        lambda: ptr_curve_figure(
            res,
            ptr_column="PTR",
            scale="log" if log_axis else "raw",
            color_by=color_by,
            profiles=profiles or None,
            band=band,
        ),
    )
    with projector.stage(figure_slot, look_for("ptr_curve")):
        render.plot(fig, key="ptr:figure", projector_height=render.FILL)
        if band is not None:
            render.caption(f":material/shield: Bands: {escape_markdown(band.label)}.")
    st.page_link(
        ctx.pages["simulator"],
        label="The Simulator: why PTR could matter",
        icon=":material/science:",
    )

    render.markdown("**How much does the correlation change?**")
    low, high = float(run.data["PTR"].min()), float(run.data["PTR"].max())
    a, b = st.columns(2)
    from_ptr = a.number_input(
        "From PTR",
        min_value=1.0,
        value=max(1.0, round(low, 1)),
        step=1.0,
        format="%g",
        key="ptr:from",
    )
    to_ptr = b.number_input(
        "To PTR",
        min_value=1.0,
        value=min(10.0, high) if high > 1 else 10.0,
        step=1.0,
        format="%g",
        key="ptr:to",
    )
    readouts = [
        (
            profile["name"] or "Model prediction (means and reference levels)",
            ptr_slope_readout(
                res,
                ptr_column="PTR",
                from_ptr=from_ptr,
                to_ptr=to_ptr,
                profile_values=profile["values"],
                band=band,
            ),
        )
        for profile in profiles or [{"name": "", "values": {}}]
    ]
    # A change resting on a flagged coefficient (or, under CR2, on df below 4) is read with
    # the state's caution and never as evidence either way.
    cautions = [change_caution(run, flags, readout) for _, readout in readouts]
    for (name, readout), caution in zip(readouts, cautions, strict=True):
        prefix = f"**{escape_markdown(name)}:** " if len(readouts) > 1 else ""
        render.markdown(prefix + escape_markdown(reading.ptr_change(readout, caution)))
        if ctx.data.correlations:
            render.caption(
                f"PTR {format_number(from_ptr, 1)}: {r_in_brief(readout.r_from)}. "
                f"PTR {format_number(to_ptr, 1)}: {r_in_brief(readout.r_to)}."
            )
    render.table(tables.readout_table(readouts, cautions).set_index("Profile"))
    if band is not None:
        render.caption(tables.readout_inference(readouts, cautions))  # escapes its user text
    render.figure_downloads(
        fig,
        "ptr-curve",
        version=f"{loading.analysis_key(ctx.settings)}|{color_by}|{log_axis}|{profiles}",
    )


@st.fragment
def means_section(run: AnalysisRun, ctx: loading.Context) -> None:
    """Marginal means of a categorical moderator (table and orchard plot), and the model
    comparison table on request."""
    res = run.result
    categorical = [t.column for t in res.design.terms if t.kind == "categorical"]
    if categorical:
        render.markdown("**Expected effect per level** (marginal means)")
        linked = sidebar.take_link_view("means")
        if linked is not None:
            for problem in state.check_view_choice("means", linked, categorical):
                st.warning(escape_markdown(problem), icon=":material/link_off:")
            if linked in categorical:
                st.session_state["means:focal"] = linked
        focal = st.selectbox("Moderator", categorical, key="means:focal")
        sidebar.write_view({"means": None if focal == categorical[0] else [focal]})
        with render.shown_errors("The marginal means"):
            means = res.marginal_means(focal, robust=run.robust)
            render.caption(
                "Each level's expected effect with the other moderators at their means "
                "(numeric) or averaged over how often their levels occur (categorical); "
                + ("cluster-robust (CR2) intervals." if run.robust is not None else "")
            )
            on_r = bool(ctx.data.correlations)
            flags = loading.state(ctx).flags_of(run)
            cautions = mean_cautions(run, flags, means)
            render.table(
                means_tables.marginal_means_table(means, on_r_scale=on_r, cautions=cautions)
            )
            for level, caution in cautions.items():
                render.caption(
                    f":material/warning: The expected effect of {escape_markdown(level)} "
                    f"cannot be trusted: {escape_markdown(caution)}."
                )
            fig = render.figure(
                ("orchard", ctx.data.key, loading.analysis_key(ctx.settings), focal),
                lambda: orchard_figure(res, means, transform="r" if on_r else None),
            )
            render.plot(fig, key="means:figure")
    if st.toggle("Compare with neighbouring models", key=handover_extras.COMPARE_KEY):
        with render.shown_errors("The model comparison"):
            comparison = model_comparison(res)
            render.table(means_tables.comparison_table(comparison))
            render.caption(escape_markdown(comparison.note))


WILD_REPLICATES = 1999


@st.fragment
def wild_bootstrap_section(run: AnalysisRun, ctx: loading.Context) -> None:
    """Beside flagged CR2 tests: the cluster wild bootstrap of each categorical moderator and
    of all moderators together, run on request (results kept for this analysis)."""
    res = run.result
    render.markdown(
        "**Few studies or few degrees of freedom?** The cluster wild bootstrap (Joshi, "
        "Pustejovsky & Beretvas 2022) tests the moderators without relying on the df that "
        "CR2 tests need."
    )
    tests = {"all moderators": list(res.design.term_labels)}
    link_names = {"all moderators": "all"}
    for term in res.design.terms:
        if term.kind != "numeric":
            shown = tables.interaction_words(res, term.column)
            tests[shown] = [term.column]
            link_names[shown] = term.column
    state_key = (ctx.data.key, loading.analysis_key(ctx.settings))
    linked = sidebar.take_link_view("cwb")
    if linked is not None:
        for problem in state.check_view_choice("cwb", linked, list(link_names.values())):
            st.warning(escape_markdown(problem), icon=":material/link_off:")
        by_link_name = {name: shown for shown, name in link_names.items()}
        if linked in by_link_name:
            st.session_state["cwb:test"] = by_link_name[linked]
            st.session_state["cwb:requested"] = (*state_key, by_link_name[linked])
    # Results are kept per state and test for the session: returning to a state shows them
    # (the test box, gone while the section was hidden, reopens on a test with a result).
    store = st.session_state.setdefault(handover_extras.WILD_KEY, {})
    kept = [shown for shown in tests if (*state_key, shown) in store]
    if "cwb:test" not in st.session_state and kept:
        st.session_state["cwb:test"] = kept[-1]
    choice = st.selectbox("Test", list(tests), key="cwb:test")
    key = (*state_key, choice)
    if st.button(f"Run the wild bootstrap ({WILD_REPLICATES} replicates)", key="cwb:run"):
        before = store.get(key)
        bar = st.progress(0.0, text="Refitting the model for each replicate…")
        started = time.perf_counter()

        def progress(done: int, total: int) -> None:
            elapsed = time.perf_counter() - started
            left = elapsed / done * (total - done)
            bar.progress(
                done / total, text=f"{done} of {total} replicates, about {left:.0f} s left"
            )

        # Under CR2 inference the test statistic uses the CR2 covariance (wildmeta type="CR2").
        cr2 = run.robust is not None and run.robust.method == "CR2"
        with render.shown_errors("The wild bootstrap"):
            store[key] = res.wild_bootstrap(
                tests[choice],
                R=WILD_REPLICATES,
                seed=1,
                type="CR2" if cr2 else "CR0",
                cluster=run.robust.cluster if run.robust is not None else None,
                progress=progress,
            )
        bar.empty()
        if store.get(key) is not before:
            # The downloads below read the state's results when the page runs: run the whole
            # page again so the results file, both scripts and the report carry this test.
            st.rerun(scope="app")
    if key in store:
        cwb = store[key]
        render.markdown(
            f"Wild bootstrap of {escape_markdown(choice)}: F = {tables.fmt_num(cwb.statistic)}, "
            f"p = {tables.fmt_p(cwb.pval)} ({cwb.R} replicates, {cwb.auxiliary} weights, "
            f"{cwb.n_clusters} clusters, {cwb.type} covariance)."
        )
    elif st.session_state.get("cwb:requested") == key:
        st.info(
            f"This link asked for the wild bootstrap of {escape_markdown(choice)}. It is not run "
            "when a link opens, since it refits the model for every replicate: press the button "
            "above to run it.",
            icon=":material/link:",
        )
    requested = key in store or st.session_state.get("cwb:requested") == key
    sidebar.write_view({"cwb": [link_names[choice]] if requested else None})


@st.fragment
def heterogeneity_section(run: AnalysisRun, ctx: loading.Context) -> None:
    """Do studies with more patients per therapist differ more? (location-scale model)"""
    st.subheader("Do studies with more patients per therapist differ more?")
    linked = sidebar.take_link_view("scale")
    if linked is not None:
        st.session_state[handover_extras.SCALE_KEY] = linked
    opened = st.toggle(
        "Fit a model of the heterogeneity (location-scale model)",
        key=handover_extras.SCALE_KEY,
        help="Lets the between-study variance τ² depend on PTR: a second, slower fit.",
    )
    sidebar.write_view({"ls": [view_link.SCALE_ON] if opened else None})
    if not opened:
        return
    if not handover_extras.heterogeneity_eligible(run):
        st.info(
            "This question is answered by a location-scale model, which needs a two-level "
            "model estimated by ML or REML: choose the aggregated (one effect per study) "
            "model in the sidebar.",
            icon=":material/info:",
        )
        return
    with render.shown_errors("The heterogeneity model"):
        ls = handover_extras.heterogeneity_model(run)
        slope = ls.scale_coefficients.loc[run.ptr_column]
        render.markdown(
            f"The between-study variance τ² changes by a factor of {np.exp(slope['estimate']):.2f} "
            f"per unit of {escape_markdown(run.ptr_column)} (scale coefficient "
            f"{slope['estimate']:.3f}, p = {tables.fmt_p(slope['pval'])}); likelihood-ratio "
            f"test against one τ² for all studies: χ²({ls.LRT_df}) = {ls.LRT:.2f}, "
            f"p = {tables.fmt_p(ls.LRT_pval)}."
        )
        fig = render.figure(
            ("tau2_curve", ctx.data.key, loading.analysis_key(ctx.settings)),
            lambda: tau2_curve_figure(ls, run.ptr_column),
        )
        render.plot(fig, key="tau2:figure")


ctx = sidebar.context()
if render.page_header("Moderators & PTR", ctx):
    run = loading.fitted(ctx)
    res = run.result
    flags = loading.state(ctx).flags_of(run)
    # On a projector the PTR curve, the page's main figure, comes first (it started 1.5
    # screens down); the meta-regression table follows it.
    first, second = st.container(), st.container()
    projector_on = projector.on()
    regression_box, ptr_box = (second, first) if projector_on else (first, second)
    with regression_box:
        render.model_statement(run)
        if res.p == 1:
            example = " (for example PTR)" if ctx.choices.has_therapists else ""
            st.info(
                f"No moderators in the model yet: choose some in the sidebar{example} to "
                "see which study characteristics explain differences between effects.",
                icon=":material/tune:",
            )
        else:
            st.subheader("Meta-regression", help=define("Meta-regression"))
            scale = "Fisher's z" if ctx.data.correlations else "the effect-size scale"
            render.caption(
                f"Coefficients are on {scale}. The intercept is the expected effect when every "
                "numeric moderator is 0 (for log PTR: one patient per therapist) and every "
                "categorical moderator is at its reference level; each other coefficient is a "
                "change from there."
            )
            render.inference_statement(run)
            render.table(tables.inference_coefficient_table(run, flags).set_index("Term"))
            omnibus = run.omnibus
            cols = st.columns(3)
            cols[0].metric(
                "Test of moderators",
                tables.omnibus_label(run),
                help=define("QM") + (f" HTZ: {define('HTZ')}" if run.robust is not None else ""),
            )
            cols[1].metric("p (moderators)", tables.fmt_p(omnibus[3]))
            cols[2].metric(
                "R² (heterogeneity explained)",
                "–" if res.R2 is None else f"{res.R2:.1f}%",
                help="Pseudo-R²: how much smaller the heterogeneity is than without moderators.",
            )
            render.reading_text(
                reading.moderator_test(res, omnibus=omnibus, caution=flags.omnibus_caution()),
                ctx,
            )
            wald = tables.inference_wald_table(run, flags)
            if not wald.empty:
                slopes = (
                    "; a row with × asks whether the PTR slope differs between levels"
                    if res.design.interactions
                    else ""
                )
                render.markdown(
                    "**Does each categorical moderator matter?** (all its levels tested "
                    f"together{slopes})"
                )
                render.table(wald.set_index("Moderator"))
            means_section(run, ctx)
            if run.robust is not None:
                wild_bootstrap_section(run, ctx)
            render.analysis_notes(run)
            downloads.result_downloads(run, ctx)
            render.robust_download_note(run)

    with ptr_box:
        st.subheader("PTR: patients per therapist")
        if not ctx.choices.has_therapists:
            st.info(
                "This table has no number of therapists per study, so PTR cannot be computed.",
                icon=":material/info:",
            )
        elif run.ptr_column is None:
            st.info(
                "Add **PTR** to the moderators in the sidebar to see whether studies with more "
                "patients per therapist show a weaker alliance–outcome link.",
                icon=":material/tune:",
            )
        else:
            ptr_section(run, ctx)
            heterogeneity_section(run, ctx)
