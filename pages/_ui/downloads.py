"""The result downloads every page offers and the report: the results file, the analysed rows,
the settings, both reproduction zips and the HTML / Word report, each made when clicked and
each stamped with the analysis's provenance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from alliance_core.analyses.run import AnalysisRun
from alliance_core.figures import forest_figure, funnel_figure, ptr_curve_figure
from alliance_core.handover import reproduce
from alliance_core.handover.provenance import Provenance, settings_json
from alliance_core.handover.report import state_report
from pages._ui import handover_extras, loading, tables
from pages._ui.render import figure_columns, provenance_for


def download_stem(ctx: loading.Context) -> str:
    return "alliance-upload" if ctx.data.upload is not None else ctx.data.dataset


@dataclass(frozen=True)
class Download:
    """One download button of the results row; ``data`` makes the file when clicked."""

    label: str
    data: Callable[[], bytes | str]
    file_name: str
    mime: str
    icon: str  # a Material symbol name
    key: str
    help: str


def reproduction_inputs(
    run: AnalysisRun,
    ctx: loading.Context,
    pooled: AnalysisRun | None = None,
    extras: handover_extras.Extras | None = None,
) -> tuple[list, dict]:
    """What a page's "Reproduce in R / Python (zip)" is made of, for
    ``reproduce.models_files`` and ``models_bundle``: every model the page shows (the pooled
    model first when the page reports it) with its provenance, and the other arguments. What
    the other pages showed travels too: the publication-bias results of the pooled model
    (with the Publication bias page's cuts) when the page reports the pooled model, the
    comparison table and heterogeneity model when the Moderators page opened them, and the
    wild bootstrap tests run for this state (``extras``: as the page read them; a download
    is made after the run, when clicked). The Methods page previews the same files."""
    extras = handover_extras.requested(ctx) if extras is None else extras
    shown = [("model", run)]
    if pooled is not None and pooled.result.p < run.result.p:
        shown = [("pooled", pooled), ("moderators", run)]
    models = [(label, model, provenance_for(model, ctx)) for label, model in shown]
    options = {
        "on_r_scale": ctx.data.correlations,
        "table": ctx.data.table,
        **carried_results(run, ctx, pooled, extras),
    }
    return models, options


def carried_results(
    run: AnalysisRun,
    ctx: loading.Context,
    pooled: AnalysisRun | None,
    extras: handover_extras.Extras,
) -> dict:
    """What the other pages showed for this state, which the results file and both
    reproduction zips carry beside the page's models (one decision for all of them): the
    pooled model's publication-bias results when the page reports the pooled model, the
    comparison table and heterogeneity model when opened, the wild bootstrap tests run."""
    pooled_shown = run if run.result.p == 1 else pooled
    return {
        "bias": (
            None if pooled_shown is None else handover_extras.publication_bias(ctx, extras.steps)
        ),
        "comparison": handover_extras.comparison(run, extras),
        "heterogeneity": handover_extras.heterogeneity(run, extras),
        "wild_bootstrap": handover_extras.wild_bootstrap(run, extras),
    }


def result_downloads(
    run: AnalysisRun, ctx: loading.Context, pooled: AnalysisRun | None = None
) -> None:
    """Results, analysed rows, settings, the reproduction scripts and the report.

    Files are made only when clicked, and each carries the analysis's provenance. With
    ``pooled`` (a page showing both the pooled model and the model with moderators) the
    results file holds both models, each row labelled in its "model" column, and "Analysed
    rows" holds the pooled model's rows (the page's headline model).
    """
    stem = download_stem(ctx)
    on_r = ctx.data.correlations
    mapping = ctx.data.mapping
    rows_run = pooled if pooled is not None else run
    extras = handover_extras.requested(ctx)  # read now: files are made when clicked

    def provenance() -> Provenance:
        return provenance_for(run, ctx)

    def bundle(language: str):
        def make() -> bytes:
            models, options = reproduction_inputs(run, ctx, pooled, extras)
            return reproduce.models_bundle(models, mapping, language=language, **options)

        return make

    csv, json_, zip_ = "text/csv", "application/json", "application/zip"
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    downloads = [
        Download(
            label="Results (CSV)",
            data=lambda: tables.results_csv(
                run,
                on_r,
                provenance(),
                pooled=pooled,
                robust=run.robust,
                **carried_results(run, ctx, pooled, extras),
            ),
            file_name=f"{stem}-results.csv",
            mime=csv,
            icon="download",
            key="results",
            help="Coefficients, the average effect, heterogeneity and tests, one row per number.",
        ),
        Download(
            label="Analysed rows (CSV)",
            # The rows of the page's own model: the pooled model's on a page that reports it
            # (a moderator with missing values leaves rows out of the moderator model only).
            data=lambda: tables.data_csv(rows_run, provenance()),
            file_name=f"{stem}-analysed-rows.csv",
            mime=csv,
            icon="download",
            key="rows",
            help=(
                "The rows the pooled model (the first numbers on this page) was fitted to"
                if rows_run is not run
                else "The rows the model was fitted to"
            )
            + " (after exclusions and the filter), with yi and vi.",
        ),
        Download(
            label="Settings (JSON)",
            data=lambda: settings_json(ctx.settings, provenance()),
            file_name="alliance-settings.json",
            mime=json_,
            icon="download",
            key="settings",
            help="Load it again in the sidebar under 'Share or save this view'.",
        ),
        Download(
            label="Reproduce in R (zip)",
            data=bundle("R"),
            file_name=f"{stem}-reproduce-R.zip",
            mime=zip_,
            icon="code",
            key="reproduce-r",
            help="data.csv, analysis.R (metafor) and the dashboard's results; the script checks "
            "that metafor gives the same numbers. With two models on the page (pooled and with "
            "moderators), one folder per model and an analysis.R that runs and counts both.",
        ),
        Download(
            label="Reproduce in Python (zip)",
            data=bundle("Python"),
            file_name=f"{stem}-reproduce-python.zip",
            mime=zip_,
            icon="code",
            key="reproduce-python",
            help="data.csv, analysis.py (alliance_core) and the dashboard's results; one folder "
            "per model when the page shows two.",
        ),
        Download(
            label="Report (HTML)",
            data=lambda: report_for(run, ctx, extras).to_html().encode("utf-8"),
            file_name=f"{stem}-report.html",
            mime="text/html",
            icon="description",
            key="report-html",
            help="Methods, APA-style results, tables, figures, provenance and references.",
        ),
        Download(
            label="Report (Word)",
            data=lambda: report_for(run, ctx, extras).to_docx(),
            file_name=f"{stem}-report.docx",
            mime=docx,
            icon="description",
            key="report-docx",
            help="The same report as a Word document.",
        ),
    ]
    row = st.container(horizontal=True)
    for download in downloads:
        row.download_button(
            download.label,
            data=download.data,
            file_name=download.file_name,
            mime=download.mime,
            on_click="ignore",
            icon=f":material/{download.icon}:",
            key=f"download:{download.key}",
            help=download.help,
        )


def report_for(
    run: AnalysisRun, ctx: loading.Context, extras: handover_extras.Extras | None = None
):
    """The report of the current analysis (figures drawn once per analysis and session).

    ``extras``: the page choices read when the page ran; a download is made on a click,
    outside the page's run, where the session's choices cannot be read."""
    if extras is None:
        extras = handover_extras.requested(ctx)
    key = f"_report:{ctx.data.key}:{loading.analysis_key(ctx.settings)}:{extras.key}"
    cached = st.session_state.get(key)
    if cached is not None:
        return cached
    pooled = loading.state(ctx).pooled
    on_r = ctx.data.correlations
    band = run.band_inference()  # under CR2 the figures' intervals are the page's robust ones
    figures = {
        "forest": forest_figure(
            run.result,
            transform="r" if on_r else None,
            columns=figure_columns(ctx.data),
            band=band,
        ),
        "funnel": funnel_figure(pooled.result, scale="r" if on_r else None),
    }
    if run.ptr_column is not None:
        figures["ptr"] = ptr_curve_figure(
            run.result, ptr_column="PTR", scale=ctx.settings.ptr_scale, band=band
        )
    built = state_report(
        loading.state(ctx),
        provenance_for(run, ctx),
        figures=figures,
        bias=handover_extras.publication_bias(ctx, extras.steps),
        comparison=handover_extras.comparison(run, extras),
        wild_bootstrap=handover_extras.wild_bootstrap(run, extras),
    )
    st.session_state[key] = built
    return built
