"""Publication bias: the contour-enhanced funnel plot, the small-study tests of the state (under
its inference), the selection model and the fail-safe N; the caveat once, in the verdict."""

import streamlit as st

from alliance_core.analyses.bias_verdict import bias_verdict
from alliance_core.figures import funnel_figure, selection_weights_figure
from alliance_core.formatting import escape_markdown
from alliance_core.wording.look_for import look_for
from pages._ui import fail_safe_section, loading, projector, render, sidebar, state
from pages._ui.handover_extras import CUT_CHOICES, CUT_LINK_NAMES, CUTS_KEY, chosen_steps

ctx = sidebar.context()
if render.page_header("Publication bias", ctx):
    run = loading.fitted(ctx)
    stage = projector.stage_slot()  # on a projector the funnel comes first, under the heading
    has_moderators = run.result.p > 1
    residuals = st.toggle(
        "Residuals of the model with moderators",
        key="funnel:residuals",
        disabled=not has_moderators,
        help="Off: each observed effect around the pooled estimate (the model without "
        "moderators), the classic funnel. On: what the moderators leave unexplained, around 0.",
    )
    shown = run if residuals and has_moderators else loading.fitted(ctx, without_moderators=True)
    res = shown.result
    render.model_statement(shown, pooled=shown is not run)
    render.state_cautions(ctx)
    if run.robust is not None:
        render.caption(
            ":material/info: Cluster-robust (CR2) inference: Egger's test and PET-PEESE are "
            "tested cluster-robustly by study (Satterthwaite df), as the pooled estimate is. "
            "The rank test and trim-and-fill have no cluster-robust form; the selection model "
            "has cluster-robust (sandwich) standard errors by study."
        )
    # Formal tests use the model without moderators (same data, filters and estimator):
    # asymmetry of the pooled effects is what they are about.
    pooled = loading.fitted(ctx, without_moderators=True).result
    transform = "r" if ctx.data.correlations else None
    tests = loading.bias_tests(ctx)
    # The cut choice is made in the selection-model section below; its last value (or the
    # opening link's, once) sets the verdict and the funnel's selection-model line.
    linked = sidebar.take_link_view("cuts")
    if linked is not None:
        offered = list(CUT_LINK_NAMES.values())
        for link_problem in state.check_view_choice("cuts", linked, offered):
            st.warning(escape_markdown(link_problem), icon=":material/link_off:")
        if linked in offered:
            st.session_state[CUTS_KEY] = CUT_CHOICES[offered.index(linked)]
    cuts_3psm = st.session_state.get(CUTS_KEY, CUT_CHOICES[0]) == CUT_CHOICES[0]
    steps = chosen_steps()
    sidebar.write_view({"cuts": None if cuts_3psm else [CUT_LINK_NAMES[CUT_CHOICES[1]]]})
    sel, problem = loading.selection_model(ctx, pooled, steps)
    render.markdown(
        "**Verdict.** " + escape_markdown(bias_verdict(tests, pooled, sel, transform=transform))
    )
    render.markdown(
        "Each point is an effect size, placed by its size and its standard error (small, "
        "imprecise studies at the bottom). Without publication bias the points scatter "
        "symmetrically around the average, in a funnel that widens downwards. If small studies "
        "with weak or null results are missing (often in the shaded non-significant region), "
        "the bottom of the funnel looks lopsided."
    )
    colour = st.toggle(
        "Colour points by study",
        key="funnel:colour",
        disabled=not res.is_three_level,
        help="Three-level model: points of one study share a colour.",
    )
    overlays = {}
    if res.p == 1 and sel is not None:
        overlays["selection_estimate"] = sel.estimate
    if res.p == 1 and tests.egger is not None:
        # Overlays live in the funnel's coordinates only without moderators.
        overlays["egger_line"] = tests.egger.funnel_line()
        if tests.trim_fill is not None and not res.is_three_level:
            overlays["imputed"] = tests.trim_fill.filled
            overlays["adjusted_estimate"] = tests.trim_fill.estimate
    # `shown` is the model with or without moderators (residuals or not); the bias tests
    # behind the overlays come from the pooled model of the same settings.
    fig = render.figure(
        ("funnel", ctx.data.key, loading.analysis_key(shown.settings), residuals, colour, steps),
        lambda: funnel_figure(
            res,
            scale="r" if ctx.data.correlations else None,
            color_by_study=colour and res.is_three_level,
            **overlays,
        ),
    )
    with projector.stage(stage, look_for("funnel")):
        render.plot(fig, key="funnel:figure", projector_height=render.FILL)
    render.caption(
        "A funnel plot is a visual check only; the verdict above says what asymmetry can and "
        "cannot show."
        + (
            " Overlays: Egger's regression line, the selection model's adjusted estimate "
            "(dash-dotted) and, for the two-level model, trim-and-fill's imputed effects "
            "(open markers) with its adjusted estimate (dotted)."
            if overlays
            else ""
        )
    )

    st.subheader("Formal tests")
    for name, outcome in tests.readings(transform):
        render.markdown(f"**{name}.** {escape_markdown(outcome)}")

    st.subheader("Selection model")
    st.radio(
        "Cuts on the one-sided p-value",
        CUT_CHOICES,
        key=CUTS_KEY,
        horizontal=True,
        help="Vevea & Hedges (1995): effect sizes are published with a weight that depends "
        "on their p-value interval. The 3PSM has one cut at p = .025 (significant or not); "
        "two cuts also separate effects in the wrong direction (p > .5).",
    )
    if problem is not None:
        st.warning(escape_markdown(problem))
    else:
        # The unadjusted average with the interval the Overview shows for this state (under
        # CR2 its cluster-robust one), not the fit's model-based one: one story.
        current = loading.state(ctx)
        interval, words = None, None
        if current.pooled.robust is not None:
            pooled_row = current.pooled.predict(transform=None).iloc[0]
            interval = (float(pooled_row["ci_lb"]), float(pooled_row["ci_ub"]))
            words = f"{current.pooled.robust.method} cluster-robust interval, as the Overview shows"
        render.markdown(
            escape_markdown(
                sel.describe(transform, unadjusted_interval=interval, interval_words=words)
            )
        )
        render.plot(selection_weights_figure(sel), key="funnel:weights")
        render.caption(
            "Each step is the relative likelihood that an effect size in that p-value "
            "interval is published, against the significant ones (fixed at 1); 1 everywhere "
            "means no selection. The model assumes the effects are normally distributed "
            "around the average without selection; with few effect sizes per interval the "
            "weights are imprecise."
        )
    fail_safe_section.show(pooled, transform)
    render.analysis_notes(run)
    render.figure_downloads(
        fig, "funnel-plot", version=f"{loading.analysis_key(ctx.settings)}|{colour}"
    )
