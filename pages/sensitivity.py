"""Sensitivity: does one study carry the result, and does PTR survive other modelling choices?"""

import pandas as pd
import streamlit as st

from alliance_core.analysis import LOG_PTR_COLUMN, PTR_COLUMN, apply_filters
from alliance_core.sensitivity import cumulative, influence_diagnostics, leave_one_out
from alliance_core.settings import PTR
from alliance_core.specification import specification_curve
from pages import _loading as loading
from pages import _render as render
from pages import _sidebar as sidebar

ctx = sidebar.context()


@st.cache_data(max_entries=8, show_spinner=False, ttl=loading.CACHE_TTL)
def leave_one_out_table(data_key: str, settings_key: str, _res) -> tuple[pd.DataFrame, str]:
    # A refit per study: cached on the analysis, like the fit itself (and shared by the
    # server's processes, see loading.shared).
    def compute():
        result = leave_one_out(_res)
        return result.table, result.describe()

    return loading.shared("leave-one-out", data_key, settings_key, compute)


@st.cache_data(max_entries=8, show_spinner=False, ttl=loading.CACHE_TTL)
def influence_table(data_key: str, settings_key: str, _res) -> tuple[pd.DataFrame, str]:
    def compute():
        result = influence_diagnostics(_res)
        # Three-level models are judged study by study (Cook's distance of a whole study).
        table = result.studies if result.studies is not None else result.effect_sizes
        return table.sort_values("influential", ascending=False), result.describe()

    return loading.shared("influence", data_key, settings_key, compute)


@st.cache_data(max_entries=8, show_spinner=False, ttl=loading.CACHE_TTL)
def cumulative_table(
    data_key: str, settings_key: str, order_by: str, _pooled
) -> tuple[pd.DataFrame, str]:
    # A refit per added study: without the cache every rerun of this page refitted them all.
    def compute():
        steps = cumulative(_pooled, order_by=order_by)
        return steps.table, steps.describe()

    return loading.shared(f"cumulative:{order_by}", data_key, settings_key, compute)


@st.cache_data(max_entries=4, show_spinner=False, ttl=loading.CACHE_TTL)
def cached_curve(data_key, settings_key, controls, ptr_column, _data, _settings, _bar):
    """Every specification for these choices; the progress bar moves only when fitting."""
    rows = apply_filters(_data.table, _settings.filters)
    roles = {"yi": "yi", "vi": "vi"}
    models = ("two-level",)
    if _data.mapping.study:
        roles["study"] = _data.mapping.study
        models = ("two-level", "three-level")
    return specification_curve(
        rows,
        roles,
        ptr_column,
        list(controls),
        models=models,
        methods=(_settings.method,),
        progress=lambda done, total: _bar.progress(done / total, text=f"{done} of {total}"),
        test=_settings.test,
        reference={c: v for c, v in _settings.reference.items() if c in controls} or None,
    )


if render.page_header("Sensitivity", ctx):
    run = loading.fitted(ctx)
    res = run.result
    data_key, settings_key = ctx.data.key, loading.analysis_key(ctx.settings)
    unit = "study" if res.is_three_level else "effect size"

    st.header("Leave one out")
    st.markdown(
        f"The model is refitted {res.n_studies if res.is_three_level else res.k} times, each "
        f"time without one {unit}"
        + (" (with all its effect sizes)" if res.is_three_level else "")
        + ". If one of them carries the result, its row stands out."
    )
    with render.shown_errors("Leave-one-out"), st.spinner("Refitting without each " + unit + "…"):
        table, text = leave_one_out_table(data_key, settings_key, res)
        st.markdown(text)
        followed = [c for c in table.columns if c.startswith("coef_")]
        order = "coef_estimate" if "coef_estimate" in table.columns else "estimate"
        change = (table[order] - table[order].median()).abs()
        shown = table.assign(change=change).sort_values("change", ascending=False)
        st.caption(
            f"The {min(10, len(shown))} {unit} rows that move "
            f"{'the followed coefficient' if followed else 'the estimate'} most:"
        )
        st.dataframe(shown.drop(columns="change").head(10), width="stretch")
        with st.expander(f"All {len(table)} refits"):
            st.dataframe(table, width="stretch")

    st.header("Influence diagnostics")
    with (
        render.shown_errors("Influence diagnostics"),
        st.spinner("Computing influence diagnostics…"),
    ):
        table, text = influence_table(data_key, settings_key, res)
        st.markdown(text)
        with st.expander("The diagnostics"):
            st.dataframe(table, width="stretch")

    year = ctx.data.mapping.year
    if year:
        st.header("Cumulative meta-analysis")
        with render.shown_errors("The cumulative meta-analysis"):
            pooled = loading.fitted(ctx, without_moderators=True).result
            pooled_key = loading.analysis_key(ctx.settings.with_changes(moderators=()))
            steps_table, steps_text = cumulative_table(data_key, pooled_key, year, pooled)
            st.markdown(steps_text)
            ok = steps_table[steps_table["error"].isna()]
            st.line_chart(ok.reset_index(drop=True)[["estimate", "ci_lb", "ci_ub"]], height=260)
            st.caption(
                f"Pooled estimate (model scale) as {unit} rows are added in order of "
                f"{year}, with its confidence interval."
            )

    st.header("Specification curve")
    if not ctx.data.mapping.has_therapists:
        st.info("The specification curve follows PTR, which needs therapist counts.")
    else:
        st.markdown(
            "PTR is always in the model. Every subset of the chosen control moderators is a "
            "specification, fitted with both the two-level and the three-level model; the "
            "curve shows the PTR coefficient of each, sorted, and how often it is significant."
        )
        candidates = [m for m in ctx.choices.moderators if m != PTR]
        default = [m for m in ctx.settings.moderators if m != PTR] or candidates[:6]
        controls = st.multiselect(
            "Control moderators (at most 8: 2^8 = 256 subsets)",
            candidates,
            default=default,
            max_selections=8,
            key="spec:controls",
        )
        # A toggle rather than a button: the curve stays on screen while the user explores,
        # and the fits are cached on (data, settings, controls), so only a change refits.
        if st.toggle("Fit every specification", key="spec:run"):
            ptr_column = LOG_PTR_COLUMN if ctx.settings.ptr_scale == "log" else PTR_COLUMN
            bar = st.progress(0.0, text="Fitting specifications…")
            with render.shown_errors("The specification curve"):
                curve = cached_curve(
                    data_key, settings_key, tuple(controls), ptr_column, ctx.data, ctx.settings, bar
                )
                bar.empty()
                current = {
                    "controls": [m for m in ctx.settings.moderators if m in controls],
                    "model": ctx.settings.model,
                    "method": ctx.settings.method,
                }
                st.metric(
                    "Specifications with a significant PTR coefficient",
                    f"{curve.share_significant:.0%}",
                )
                render.plot(curve.figure(current=current), key="spec:figure")
                st.markdown(curve.describe())
                st.download_button(
                    "Specifications (CSV)",
                    curve.table.to_csv().encode(),
                    file_name=f"{render.download_stem(ctx)}-specifications.csv",
                    mime="text/csv",
                    key="spec:download",
                )
