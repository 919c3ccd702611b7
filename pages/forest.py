"""Forest plot: every study's effect with its interval, and the pooled estimate."""

import streamlit as st

from alliance_core.figures import forest_figure
from alliance_core.formatting import escape_markdown
from alliance_core.wording.look_for import look_for
from pages._ui import loading, projector, render, responsive, sidebar, state

SORTS = {
    "effect": "Effect size",
    "precision": "Precision (most precise first)",
    "year": "Year",
    "ptr": "PTR",
    "label": "Label",
    None: "Data order",
}

ctx = sidebar.context()
if render.page_header("Forest plot", ctx):
    run = loading.fitted(ctx)
    res = run.result
    stage = projector.stage_slot()  # on a projector the plot comes first, under the heading
    render.model_statement(run)
    columns = render.figure_columns(ctx.data)
    sorts = [s for s in SORTS if s is None or render.can_sort_by(s, columns, res.data)]
    left, middle, right = st.columns(3)
    linked = sidebar.take_link_view("sort")
    if linked is not None:
        wanted = None if linked == "data" else linked
        offered = ["data" if s is None else s for s in sorts]
        for problem in state.check_view_choice("sort", linked, offered):
            st.warning(escape_markdown(problem), icon=":material/link_off:")
        if wanted in sorts:
            st.session_state["forest:sort"] = wanted
    sort_by = left.selectbox("Sort rows by", sorts, format_func=SORTS.get, key="forest:sort")
    # The default order stays out of the link; any other order travels with it.
    sidebar.write_view(
        {"sort": None if sort_by == "effect" else ["data" if sort_by is None else sort_by]}
    )
    groups = [c for c in ctx.choices.categorical if c in res.data.columns]
    subgroup = middle.selectbox(
        "Subgroup diamonds for",
        [None, *groups],
        format_func=lambda c: "— none —" if c is None else c,
        key="forest:subgroup",
        help="A separate average (same model, no moderators) for each level of this column.",
    )
    show_all = right.toggle(
        "Show every effect size",
        key="forest:all",
        disabled=not res.is_three_level,
        help="Three-level model: one row per effect size, grouped under its study, instead of "
        "one pooled row per study.",
    )
    options = {
        "sort_by": sort_by,
        "subgroup": subgroup,
        "show_all_effect_sizes": show_all and res.is_three_level,
        "transform": "r" if ctx.data.correlations else None,
        "columns": columns,
        "band": run.band_inference(),
    }
    # The data and analysis keys name the fit (and so the bands); the rest are the view.
    view = (ctx.data.key, loading.analysis_key(ctx.settings), sort_by, subgroup, show_all)

    def forest(layout: str):
        return render.figure(
            ("forest", layout, *view), lambda: forest_figure(res, layout=layout, **options)
        )

    fig = forest("wide")
    # Both layouts are sent; the browser shows the one that fits its width (CSS below), so a
    # phone gets a plot over the whole width instead of columns printed over each other.
    st.markdown(responsive.FOREST_CSS, unsafe_allow_html=True)
    with projector.stage(stage, look_for("forest"), fit="scroll"):
        with st.container(key=responsive.WIDE_KEY):
            render.plot(fig, key="forest:figure")
        with st.container(key=responsive.COMPACT_KEY):
            render.plot(forest("compact"), key="forest:compact")
    render.inference_statement(run)
    render.state_cautions(ctx)
    if run.robust is not None and subgroup:
        st.caption(
            ":material/info: Subgroup diamonds are separate model-based fits (too few studies "
            "per subgroup for cluster-robust intervals)."
        )
    render.analysis_notes(run)
    render.figure_downloads(
        fig,
        "forest-plot",
        version=f"{loading.analysis_key(ctx.settings)}|{sort_by}|{subgroup}|{show_all}",
    )
