"""Sensitivity: does one study carry the result, and does PTR survive other modelling choices?"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from alliance_core.analyses.dependence import RHO_GRID, rho_sensitivity
from alliance_core.analyses.influence import influence_diagnostics
from alliance_core.analyses.references import resolve_references
from alliance_core.analyses.run import LOG_PTR_COLUMN, PTR_COLUMN, AnalysisRun, apply_filters
from alliance_core.analyses.sensitivity import cumulative, leave_one_out
from alliance_core.analyses.settings import PTR
from alliance_core.analyses.specification import specification_curve
from alliance_core.analyses.state import ModelFlags
from alliance_core.figures import rho_sensitivity_figure, specification_figure
from alliance_core.formatting import escape_markdown
from alliance_core.handover.csv_export import csv_bytes
from alliance_core.model.design import INTERCEPT
from alliance_core.model.nesting import is_nested, model_name
from alliance_core.wording.glossary import with_definitions
from alliance_core.wording.look_for import look_for
from alliance_core.wording.reading import effect_words
from pages._ui import downloads, loading, projector, render, sidebar, state
from pages._ui import sensitivity_tables as display

ctx = sidebar.context()
# Session-state key of the open tab.
SECTION_KEY = "sensitivity:section"


@st.cache_data(max_entries=8, show_spinner=False, ttl=loading.CACHE_TTL)
def leave_one_out_table(
    data_key: str, settings_key: str, _res, on_r: bool, _flags
) -> tuple[pd.DataFrame, str | None, str, pd.DataFrame]:
    # A refit per study: cached on the analysis, like the fit itself (and shared by the
    # server's processes, see loading.shared). The reading states effects on the table's
    # scale (r for correlations); the state's flags (fixed by the analysis) decide whether
    # the followed coefficient's test may be read.
    def compute():
        result = leave_one_out(_res)
        caution = _flags.coefficient_caution(result.coefficient) if result.coefficient else None
        text = result.describe(reading_scale(on_r), caution)
        return result.table, result.coefficient, text, result.by_change()

    return loading.shared(f"leave-one-out:{reading_scale(on_r)}", data_key, settings_key, compute)


def reading_scale(on_r: bool) -> str | None:
    """The transform of the numbers in a reading: r for correlations, else the model's scale."""
    return "r" if on_r else None


@st.cache_data(max_entries=8, show_spinner=False, ttl=loading.CACHE_TTL)
def influence_table(data_key: str, settings_key: str, _res) -> tuple[pd.DataFrame, str]:
    def compute():
        result = influence_diagnostics(_res)
        # Three-level models are judged study by study (Cook's distance of a whole study).
        table = result.studies if result.studies is not None else result.effect_sizes
        return table.sort_values("influential", ascending=False, kind="stable"), result.describe()

    return loading.shared("influence", data_key, settings_key, compute)


def row_labels(res, label_column: str | None) -> dict | None:
    """Readable names of two-level rows (their label), so tables do not show row numbers."""
    if res.is_three_level or not label_column or label_column not in res.data.columns:
        return None
    return res.data[label_column].astype(str).to_dict()


@st.cache_data(max_entries=8, show_spinner=False, ttl=loading.CACHE_TTL)
def cumulative_table(
    data_key: str, settings_key: str, order_by: str, _pooled, on_r: bool
) -> tuple[pd.DataFrame, str]:
    # A refit per added study: without the cache every rerun of this page refitted them all.
    # The reading states the pooled estimate on the chart's scale (r for correlations).
    def compute():
        steps = cumulative(_pooled, order_by=order_by)
        return steps.table, steps.describe(reading_scale(on_r))

    return loading.shared(
        f"cumulative:{order_by}:{reading_scale(on_r)}", data_key, settings_key, compute
    )


@st.cache_data(max_entries=4, show_spinner=False, ttl=loading.CACHE_TTL)
def cached_curve(data_key, settings_key, controls, ptr_column, dimensions, _data, _settings, _bar):
    """Every specification for these choices; the progress bar moves only when fitting."""
    rows = apply_filters(_data.table, _settings.filters)
    roles = {"yi": "yi", "vi": "vi"}
    models = ("two-level",)
    if _data.mapping.study:
        roles["study"] = _data.mapping.study
        # On nested rows the two-level fit would treat effect sizes as independent: left out;
        # without nesting the three-level fit cannot tell its two variances apart (the
        # sidebar does not offer it either).
        nested = is_nested(rows, _data.mapping.study)
        models = ("three-level",) if nested else ("two-level",)
    return specification_curve(
        rows,
        roles,
        ptr_column,
        list(controls),
        models=models,
        methods=(_settings.method,),
        progress=lambda done, total: _bar.progress(done / total, text=f"{done} of {total}"),
        test=_settings.test,
        reference=resolve_references(
            rows,
            controls,
            {c: v for c, v in _settings.reference.items() if c in controls},
            _data.mapping.study,
        )
        or None,
        rhos=dimensions[0],
        inferences=dimensions[1],
    )


@st.cache_data(max_entries=8, show_spinner="Refitting across ρ and inference…")
def dependence_table(data_key, settings_key, term, _data, _settings) -> pd.DataFrame:
    # One refit per rho, each with both inferences: cached on the analysis like the fit.
    return rho_sensitivity(_data.rows, _data.mapping, _settings, term, table=_data.table)


def dependence_section(run, term: str | None) -> None:
    """The PTR coefficient across assumed rho and model-based vs CR2 inference; without PTR
    (``term`` None) the pooled estimate, from the model without moderators, so that data
    without therapist counts get the same check of the other tabs' model-based intervals."""
    settings, label, what = run.settings, None, "the PTR coefficient"
    if term is None:
        settings = settings.with_changes(moderators=())
        term, label = INTERCEPT, "Pooled estimate"
        what = "the pooled estimate (the model without moderators)"
    if settings.uses_rho:
        st.markdown(
            "Studies rarely report how strongly the sampling errors of their effect sizes "
            f"correlate, so the model assumes a value ρ. Here {what} is refitted "
            f"for ρ = {', '.join(f'{r:g}' for r in RHO_GRID)}, each with model-based and "
            "cluster-robust (CR2) inference. If the conclusion is the same in every row, it "
            "does not hinge on the assumption."
        )
    else:
        st.markdown(
            f"This model does not use ρ; {what} is shown with model-based and "
            "cluster-robust (CR2) inference."
        )
    table = dependence_table(ctx.data.key, loading.analysis_key(settings), term, ctx.data, settings)
    render.table(display.dependence_display(table, run.result.level))
    st.caption(
        "Model-based df: k − p for t tests, – for z tests; CR2 df: Satterthwaite, per "
        "coefficient. The row marked ● is the sidebar's choice."
        + ("" if ctx.data.mapping.study else " CR2 needs a study column, which this table lacks.")
    )
    render.plot(
        rho_sensitivity_figure(table, term, run.result.level, label=label),
        key="dependence:figure",
    )


def cumulative_section(pooled_run, year: str, unit: str, on_r: bool, symbol) -> None:
    """The pooled estimate as rows are added in order of ``year``: reading, chart, caption."""
    pooled_key = loading.analysis_key(ctx.settings.with_changes(moderators=()))
    steps_table, steps_text = cumulative_table(
        ctx.data.key, pooled_key, year, pooled_run.result, on_r
    )
    st.markdown(escape_markdown(steps_text))
    chart = display.cumulative_chart(steps_table, on_r=on_r, symbol=symbol)
    effect = chart.columns[1]
    st.line_chart(
        chart,
        x="Step",
        y=list(chart.columns[1:]),
        x_label=f"{unit.capitalize()} rows added, in order of {year}",
        y_label=effect,
        height=280,
    )
    st.caption(
        f"{effect} as {unit} rows are added in order of {escape_markdown(year)}, with "
        "its confidence interval" + (" (pooled on Fisher's z, shown as r)." if on_r else ".")
    )


@dataclass(frozen=True)
class Refits:
    """What every section of the page reads: the fit, its cache keys and how rows are named."""

    run: AnalysisRun
    data_key: str
    settings_key: str
    unit: str  # "study" (three-level: whole studies are left out) or "effect size"
    on_r: bool
    symbol: str
    labels: dict | None
    flags: ModelFlags  # the state's flags of ``run``

    @property
    def result(self):
        return self.run.result


def leave_one_out_section(page: Refits) -> None:
    res = page.result
    st.markdown(
        f"The model is refitted {res.n_studies if res.is_three_level else res.k} times, each "
        f"time without one {page.unit}"
        + (" (with all its effect sizes)" if res.is_three_level else "")
        + ". If one of them carries the result, its row stands out."
    )
    with (
        render.shown_errors("Leave-one-out"),
        st.spinner("Refitting without each " + page.unit + "…"),
    ):
        table, coefficient, text, by_change = leave_one_out_table(
            page.data_key, page.settings_key, res, page.on_r, page.flags
        )
        st.markdown(escape_markdown(text))

        def readable(rows: pd.DataFrame) -> pd.DataFrame:
            return display.leave_one_out_display(
                rows,
                unit=page.unit,
                coefficient=coefficient,
                on_r=page.on_r,
                has_moderators=res.p > 1,
                level=res.level,
                labels=page.labels,
                symbol=page.symbol,
            )

        # Ordered as the sentence above reads "moved it most": distance from the full model.
        shown = readable(by_change)
        render.caption(
            f"The {min(10, len(shown))} {page.unit} rows that move "
            f"{'the PTR coefficient' if coefficient else 'the estimate'} most"
            + (" (effects as r; coefficients on Fisher's z):" if page.on_r else ":"),
            help=with_definitions(" ".join(map(str, shown.columns))),  # the table's terms
        )
        # A static table (like the Overview's): ten rows need no scrolling grid, and the
        # browser then draws the page without loading the grid's script.
        with projector.stage(stage, look_for("sensitivity"), fit="scroll"):
            render.table(shown.head(10), hide_index=True)
        # Filled only when opened: a closed expander's table would still be sent and laid
        # out by the browser on every first view of the page.
        every = st.expander(f"All {len(table)} refits", key="loo:all", on_change="rerun")
        if every.open:
            with every:
                render.dataframe(readable(table), width="stretch", hide_index=True)


def influence_section(page: Refits) -> None:
    res = page.result
    if res.rho is not None:
        st.info(
            "Influence diagnostics are not available yet for the model with correlated "
            f"sampling errors (ρ = {res.rho:g}). Set ρ to 0 in the sidebar to see them for the "
            "three-level model with independent sampling errors; the leave-one-out tab already "
            "shows which study moves the result.",
            icon=":material/info:",
        )
        return
    with (
        render.shown_errors("Influence diagnostics"),
        st.spinner("Computing influence diagnostics…"),
    ):
        table, text = influence_table(page.data_key, page.settings_key, res)
        st.markdown(escape_markdown(text))
        with st.expander("The diagnostics"):
            render.dataframe(
                display.influence_display(table, unit=page.unit, labels=page.labels),
                width="stretch",
                hide_index=True,
            )


def cumulative_tab(page: Refits) -> None:
    year = ctx.data.mapping.year
    with render.shown_errors("The cumulative meta-analysis"):
        pooled_run = loading.fitted(ctx, without_moderators=True)
        # The page's statement names the sidebar's model; this tab follows another one.
        render.model_statement(pooled_run, pooled=True, where="in this tab")
        if year in pooled_run.result.data.columns:
            cumulative_section(pooled_run, year, page.unit, page.on_r, page.symbol)
        else:
            # One aggregated effect per study: a year that differs within a study is gone.
            st.info(
                f"The studies cannot be put in order of {escape_markdown(year)}: its value "
                "differs between the effect sizes of some studies, so one aggregated effect "
                "per study has no single value of it. The three-level model orders studies "
                "by their first effect size.",
                icon=":material/info:",
            )


def dependence_tab(page: Refits) -> None:
    with render.shown_errors("The sensitivity to ρ and inference"):
        dependence_section(page.run, page.run.ptr_column)


def specification_section(page: Refits) -> None:
    nested = is_nested(apply_filters(ctx.data.table, ctx.settings.filters), ctx.data.mapping.study)
    if nested:
        st.markdown(
            "PTR is always in the model. Every subset of the chosen control moderators is a "
            "specification, fitted with the three-level model; the curve shows the PTR "
            "coefficient of each, sorted, and how often it is significant."
        )
        st.caption(
            ":material/info: Left out: the two-level model that treats the effect sizes of "
            "one study as independent (it makes p-values too small), and the two-level "
            "model on one aggregated effect per study (controls that differ within a study, "
            "such as the alliance rater, have no single study value there)."
        )
    else:
        st.markdown(
            "PTR is always in the model. Every subset of the chosen control moderators is a "
            "specification, fitted with "
            + (
                "both the two-level and the three-level model"
                if ctx.data.mapping.study
                else "the two-level model"
            )
            + "; the curve shows the PTR coefficient of each, sorted, and how often it is "
            "significant."
        )
    candidates = [m for m in ctx.choices.moderators if m != PTR]
    default = [m for m in ctx.settings.moderators if m != PTR] or candidates[:6]
    controls = st.multiselect(
        "Control moderators (at most 8: 2^8 = 256 subsets)",
        candidates,
        default=default[:8],
        max_selections=8,
        key="spec:controls",
    )
    three_level_curve = bool(ctx.data.mapping.study)
    vary = st.toggle(
        "Also vary ρ (0 to 0.8) and the inference (model-based and CR2)",
        key="spec:dimensions",
        disabled=not three_level_curve,
        help="Each specification is then fitted for every ρ and reported under both "
        "inferences: five times the fits, shown as extra rows of choices under the curve.",
    )
    if vary and three_level_curve:
        rhos = tuple(sorted({*RHO_GRID, ctx.settings.rho}))
        dimensions = (rhos, ("model", "CR2"))
    else:
        dimensions = ((ctx.settings.che_rho,), (ctx.settings.inference,))
    # A toggle rather than a button: the curve stays on screen while the user explores,
    # and the fits are cached on (data, settings, controls), so only a change refits.
    if not st.toggle("Fit every specification", key="spec:run"):
        return
    ptr_column = LOG_PTR_COLUMN if ctx.settings.ptr_scale == "log" else PTR_COLUMN
    bar = st.progress(0.0, text="Fitting specifications…")
    with render.shown_errors("The specification curve"):
        curve = cached_curve(
            page.data_key,
            page.settings_key,
            tuple(controls),
            ptr_column,
            dimensions,
            ctx.data,
            ctx.settings,
            bar,
        )
        bar.empty()
        current = None
        if ctx.settings.model in set(curve.table["model"]):
            current = {
                "controls": [m for m in ctx.settings.moderators if m in controls],
                "model": ctx.settings.model,
                "method": ctx.settings.method,
                "rho": ctx.settings.che_rho,
                "inference": ctx.settings.inference,
            }
        else:
            st.caption(
                "The sidebar's model ("
                + model_name(ctx.settings.model)
                + ") is not one of the curve's, so no specification is highlighted."
            )
        share = curve.share_significant
        st.metric(
            "Specifications with a significant PTR coefficient",
            "–" if np.isnan(share) else f"{share:.0%}",
            help="Counted among the specifications whose PTR test can be trusted; the others "
            "are marked in the figure and named below."
            if curve.n_cautioned
            else None,
        )
        render.plot(specification_figure(curve, current=current), key="spec:figure")
        st.markdown(escape_markdown(curve.describe()))
        st.download_button(
            "Specifications (CSV)",
            csv_bytes(curve.table, index=True),
            file_name=f"{downloads.download_stem(ctx)}-specifications.csv",
            mime="text/csv",
            key="spec:download",
        )


# Tab label -> its name in a link (tab=...): short, and stable if a label is reworded.
TAB_LINK_NAMES = {
    "Leave one out": "leave-one-out",
    "Influence diagnostics": "influence",
    "Cumulative meta-analysis": "cumulative",
    "Sampling correlation and inference": "rho",
    "Specification curve": "specification",
}


def sections(run: AnalysisRun) -> dict:
    """The page's tabs, in order: the analyses this data and model allow."""
    shown = {
        "Leave one out": leave_one_out_section,
        "Influence diagnostics": influence_section,
    }
    if ctx.data.mapping.year:
        shown["Cumulative meta-analysis"] = cumulative_tab
    # Every model gets the ρ and inference check (of the PTR slope, or else of the pooled
    # estimate); the specification curve follows PTR, so it needs therapist counts.
    shown["Sampling correlation and inference"] = dependence_tab
    if ctx.data.mapping.has_therapists:
        shown["Specification curve"] = specification_section
    return shown


def open_linked_tab(labels: list[str]) -> None:
    """Open the tab the opening link names (once), or say why it cannot be opened."""
    linked = sidebar.take_link_view("tab")
    if linked is None:
        return
    offered = [TAB_LINK_NAMES[label] for label in labels]
    for problem in state.check_view_choice("tab", linked, offered):
        st.warning(escape_markdown(problem), icon=":material/link_off:")
    if linked in offered:
        st.session_state[SECTION_KEY] = labels[offered.index(linked)]


if render.page_header("Sensitivity", ctx):
    run = loading.fitted(ctx)
    res = run.result
    # On a projector the leave-one-out table, the first tab's result, comes first.
    stage = projector.stage_slot()
    page = Refits(
        run=run,
        data_key=ctx.data.key,
        settings_key=loading.analysis_key(ctx.settings),
        unit="study" if res.is_three_level else "effect size",
        on_r=ctx.data.correlations,
        symbol=effect_words(ctx.data.measure).symbol,
        labels=row_labels(res, ctx.data.mapping.label),
        flags=loading.state(ctx).flags_of(run),
    )
    render.model_statement(
        run,
        also=(
            "The cumulative meta-analysis follows the same model without moderators, as its "
            "tab says."
            if res.p > 1
            else ""
        ),
    )
    render.state_cautions(ctx)
    if run.robust is not None:
        st.caption(
            ":material/info: Leave-one-out, influence and cumulative refits show model-based "
            "intervals; the tab “Sampling correlation and inference” sets them against "
            "cluster-robust (CR2) inference."
        )
    shown = sections(run)
    labels = list(shown)
    open_linked_tab(labels)
    # Only the open tab runs: each analysis refits the model once per study (about a second
    # for a choice nobody made before), and a server shared by a class cannot spend that on
    # tabs nobody looks at. Switching tabs reruns the page; every result stays cached.
    tabs = st.tabs(labels, key=SECTION_KEY, on_change="rerun")
    opened = st.session_state.get(SECTION_KEY)
    opened = opened if opened in labels else labels[0]
    # The first tab stays out of the link; any other travels with it.
    sidebar.write_view({"tab": None if opened == labels[0] else [TAB_LINK_NAMES[opened]]})
    for tab, section in zip(tabs, shown.values(), strict=True):
        if tab.open is not False:
            with tab:
                section(page)
