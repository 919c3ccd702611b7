"""Overview: the average effect with its intervals, how much effects vary, and what that means."""

import streamlit as st

from alliance_core import reading
from pages import _tables as tables
from pages import _ui as ui

ctx = ui.context()
if ui.page_header("Overview", ctx):
    run = ui.fitted(ctx)
    res = run.result
    on_r = ctx.data.correlations
    pred = res.predict(transform="r" if on_r else None).iloc[0]
    level = f"{res.level:.0%}"
    symbol = "r" if on_r else "effect"
    average = f"Average {symbol}" if res.p == 1 else f"Predicted {symbol}"

    cols = st.columns(5)
    cols[0].metric(
        average,
        tables.fmt_num(pred["pred"]),
        help="The estimated mean of the true effects."
        if res.p == 1
        else "The model's prediction for a study with every numeric moderator at its mean and "
        "every categorical moderator at its reference level.",
    )
    cols[1].metric(
        f"{level} confidence interval",
        tables.fmt_interval(pred["ci_lb"], pred["ci_ub"]),
        help="Where the average true effect plausibly lies.",
    )
    cols[2].metric(
        f"{level} prediction interval",
        tables.fmt_interval(pred["pi_lb"], pred["pi_ub"]),
        help="Where the true effect of a new, similar study is expected to lie: wider than the "
        "confidence interval because true effects differ between studies.",
    )
    cols[3].metric("Effect sizes (k)", f"{res.k:,}")
    cols[4].metric("Studies", f"{res.n_studies:,}")
    if res.p > 1:
        st.caption(
            f"Predicted {symbol}: for a study at the mean of every numeric moderator and the "
            "reference level of every categorical one."
        )
    if on_r:
        st.caption(
            "Correlations are pooled as Fisher's z = atanh(r) and shown back as r; the "
            "interval limits are transformed the same way."
        )

    st.subheader("In plain words")
    st.markdown(ui.plain(reading.pooled_effect(res, on_r_scale=on_r), ctx))
    st.markdown(ui.plain(reading.heterogeneity(res), ctx))
    if res.p > 1:
        st.markdown(ui.plain(reading.moderator_test(res), ctx))
    if run.ptr_column:
        st.markdown(reading.ptr_effect(res, run.ptr_column))

    st.subheader("Heterogeneity")
    st.table(tables.heterogeneity_table(res).set_index("Statistic"))
    ui.analysis_notes(run)

    st.subheader("Downloads")
    ui.result_downloads(run, ctx)
