"""Publication bias: the contour-enhanced funnel plot."""

import streamlit as st

from alliance_core.figures import funnel_figure
from pages import _ui as ui

ctx = ui.context()
if ui.page_header("Publication bias", ctx):
    run = ui.fitted(ctx)
    res = run.result
    st.markdown(
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
    fig = funnel_figure(
        res,
        scale="r" if ctx.data.correlations else None,
        color_by_study=colour and res.is_three_level,
    )
    ui.plot(fig, key="funnel:figure")
    st.caption(
        "A funnel plot is a visual check only: asymmetry can also come from true differences "
        "between small and large studies. Formal tests (Egger's regression test, trim-and-fill) "
        "are planned for a later version of the dashboard."
    )
    ui.analysis_notes(run)
    ui.figure_downloads(fig, "funnel-plot", version=f"{ui.analysis_key(ctx.settings)}|{colour}")
