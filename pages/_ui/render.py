"""Drawing helpers every page uses: header, errors shown as messages, plots, notes, figure files."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from alliance_core.analyses.run import AnalysisRun, apply_filters
from alliance_core.analyses.settings import PTR, AnalysisSettings
from alliance_core.errors import AnalysisError
from alliance_core.figures import (
    export_figure,
    projector_figure,
    split_caption,
)
from alliance_core.figures.export import prepare_images
from alliance_core.formatting import escape_markdown
from alliance_core.handover.provenance import Provenance, bundled_sha256
from alliance_core.model.nesting import AGGREGATED, INDEPENDENT, independence_warning, model_name
from alliance_core.wording.figure_text import plain_figure
from alliance_core.wording.glossary import with_definitions
from alliance_core.wording.reading import which_model
from alliance_core.wording.table_text import markdown_frame
from pages._ui import chart, loading, session, sidebar

LOG = logging.getLogger("alliance_dashboard")
if not LOG.handlers:  # unexpected errors go to the server console, never to the browser
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    LOG.addHandler(_handler)
    LOG.setLevel(logging.INFO)

# Shown instead of a traceback; tests look for its first words to catch unexpected failures.
UNEXPECTED = "Something went wrong on the server"


# -- page helpers ----------------------------------------------------------------------------
@contextmanager
def shown_errors(what: str = "This part of the page") -> Iterator[None]:
    """Show a user's mistake (AnalysisError) as its message, anything else as a short notice.

    Streamlit's own control flow (rerun, stop, page switch) derives from BaseException and
    passes through untouched.
    """
    try:
        yield
    except AnalysisError as error:
        # Messages quote user text (column names, levels, file names): shown as text.
        st.error(escape_markdown(error), icon=":material/error:")
    except Exception:
        LOG.exception("Unexpected error while drawing %s", what.lower())
        st.error(
            f"{UNEXPECTED}: {what.lower()} could not be shown. The rest of the dashboard still "
            "works; the details are in the server log.",
            icon=":material/error:",
        )


def describe_settings(settings: AnalysisSettings) -> str:
    """The model in one line of Markdown; moderator, column and level names are escaped."""
    model = model_name(settings.model, settings.rho if settings.model == AGGREGATED else None)
    moderators = [
        session.PTR_SCALE_LABELS[settings.ptr_scale] if m == PTR else escape_markdown(m)
        for m in settings.moderators
    ]
    if settings.robust:
        # Under CR2 every test and interval is t on its own Satterthwaite df; the model-based
        # test setting (z or t) is not used, so the header does not name it.
        inference = "CR2 · t on Satterthwaite df"
    else:
        test = {"z": "z", "t": "Knapp–Hartung" if settings.is_two_level else "t"}[settings.test]
        inference = f"{test} tests"
    parts = [f"{model} {settings.method}", inference]
    parts.append("moderators: " + ", ".join(moderators) if moderators else "no moderators")
    for column, levels in settings.filters.items():
        shown = " / ".join(escape_markdown(level) for level in levels)
        parts.append(f"only {escape_markdown(column)} = {shown}")
    return " · ".join(parts)


def markdown(
    body: str, unsafe_allow_html: bool = False, *, help: str | None = None, **options
) -> None:
    """``st.markdown`` with the glossary's plain-language definition of every term the text
    shows (CR2, τ², PTR, …) on hover, after any ``help`` of its own."""
    st.markdown(body, unsafe_allow_html, help=with_definitions(str(body), help), **options)


def caption(
    body: str, unsafe_allow_html: bool = False, *, help: str | None = None, **options
) -> None:
    """``st.caption`` with the definitions of the terms it shows on hover (as :func:`markdown`)."""
    st.caption(body, unsafe_allow_html, help=with_definitions(str(body), help), **options)


def page_header(title: str, ctx: loading.Context, *, needs_data: bool = True) -> bool:
    """Title, the data and model in one line (SIMULATED when it is), and whether to go on."""
    st.title(title)
    if ctx.data is None:
        if needs_data:
            st.info(
                escape_markdown(ctx.problem or "No data to analyse."), icon=":material/upload_file:"
            )
            st.page_link(
                ctx.pages["data"], label="Go to the Data page", icon=":material/table_view:"
            )
        return not needs_data
    badge = ":orange-badge[:material/science: SIMULATED] " if ctx.data.simulated else ""
    title = escape_markdown(ctx.data.title)
    settings = describe_settings(ctx.settings)
    st.markdown(f"{badge}**{title}**  \n{settings}", help=with_definitions(settings))
    if needs_data and ctx.settings.model == INDEPENDENT:
        independence_notice(ctx)
    return True


def independence_notice(ctx: loading.Context) -> None:
    """The warning every page shows over numbers of the not-recommended independent fit."""
    rows = apply_filters(ctx.data.table, ctx.settings.filters)
    study = ctx.data.mapping.study
    n_studies = int(rows[study].nunique()) if study in rows.columns else len(rows)
    st.warning(
        "**Not recommended: effect sizes treated as independent.** "
        + independence_warning(len(rows), n_studies),
        icon=":material/warning:",
    )


def model_statement(
    run: AnalysisRun, *, pooled: bool = False, where: str = "on this page", also: str = ""
) -> None:
    """One line saying which model the page's (or a tab's: ``where``) numbers come from
    (moderators, k); ``also`` adds a sentence (e.g. which tab follows another model)."""
    res = run.result
    aggregated = run.data.attrs.get("rho") is not None and not res.is_three_level
    total = int(run.data["ki"].sum()) if aggregated and "ki" in run.data.columns else None
    statement = which_model(
        res, run.moderator_columns, pooled=pooled, aggregated_from=total, where=where
    )
    caption(":material/functions: " + escape_markdown(" ".join(filter(None, [statement, also]))))


def inference_statement(run: AnalysisRun) -> None:
    """Which inference the page's tests and intervals use, and, under CR2, every reason (in
    plain words) its p-values may not hold."""
    if run.robust is None:
        caption(
            ":material/calculate: Inference: model-based standard errors "
            "(choose cluster-robust CR2 in the sidebar to check them against the studies)."
        )
        return
    statement = (
        f":material/shield: Inference: {escape_markdown(run.inference_name)}: p-values and "
        "intervals use t on each test's Satterthwaite degrees of freedom."
    )
    st.caption(statement, help=with_definitions(statement, None, "CR2", "Satterthwaite df"))
    for warning in run.inference_warnings():
        st.warning(escape_markdown(warning), icon=":material/warning:")


def state_cautions(ctx: loading.Context) -> None:
    """The Overview's words for every test the current state flags (the same sentences, from
    its ModelFlags), for pages that show the model without reading its tests: a flagged
    result is never left to pass there for significant or non-significant."""
    for item in loading.state(ctx).readings():
        if item.flagged:
            st.warning(escape_markdown(plain(item.text, ctx)), icon=":material/warning:")


def robust_download_note(run: AnalysisRun) -> None:
    """Under CR2: what the results file holds, truly (the robust rows are the ones shown)."""
    if run.robust is not None:
        caption(
            ":material/info: The results file and both scripts hold the model-based numbers "
            "and, in the sections marked “robust”, the cluster-robust (CR2) coefficients, tests "
            "and prediction this page shows; the scripts check both."
        )


@dataclass(frozen=True)
class ShownFigure:
    """A figure ready for the page: ``full`` keeps its caption (downloads export it), ``screen``
    is drawn with the caption's ``notes`` as wrapping text under it. Both have their texts
    escaped already (labels and levels from uploads are text, not live HTML)."""

    full: go.Figure
    screen: go.Figure
    notes: tuple[str, ...]


def _shown(fig: go.Figure) -> ShownFigure:
    full = plain_figure(fig)
    screen, notes = split_caption(full)  # a copy of an escaped figure: escaped too
    return ShownFigure(full, screen, tuple(notes))


@st.cache_resource(max_entries=64, ttl=loading.CACHE_TTL, show_spinner=False)
def _cached_figure(key: tuple, _build: Callable[[], go.Figure]) -> ShownFigure:
    return _shown(_build())


def figure(key: tuple, build: Callable[[], go.Figure]) -> ShownFigure:
    """``build()``, once per process for a given ``key``: every session showing the same
    analysis and view shares one figure instead of rebuilding it at each click (a forest plot
    of 150 studies takes Plotly a fifth of a second). ``key`` must name everything the figure
    depends on (figure kind, data key, analysis key, view choices). The shared figures are
    never changed afterwards: pages only read them (charts and downloads copy)."""
    return _cached_figure(key, build)


FILL = "fill"  # a figure as high as its projector stage's box (``plot(projector_height=FILL)``)


def plot(
    fig: go.Figure | ShownFigure,
    key: str,
    projector_height: int | Literal["fill"] | None = None,
    *,
    legend: Literal["right", "own"] = "right",
) -> None:
    """The figure, with its caption as wrapping text under it (an in-figure caption does not
    wrap and would be cut on narrow screens); downloads keep the caption in the figure.
    ``projector_height`` is the figure's height in the projector view, where a page's main
    figure must fit one screen: px, or :data:`FILL` (as high as its box, a projector stage's
    figure box, whose height follows the screen's). In a filled box the legend goes to the
    right of the plot; ``legend="own"`` keeps the figure's own (above the plot), for a figure
    in a narrow column, which needs its width for the plot."""
    shown = fig if isinstance(fig, ShownFigure) else _shown(fig)
    screen, notes = shown.screen, shown.notes
    height: int | str = "content"
    if st.session_state.get(session.PROJECTOR):
        fixed = projector_height if isinstance(projector_height, int) else None
        screen = projector_figure(screen, fixed)  # a copy: shared figures stay
        if projector_height == FILL:
            height = "stretch"
        if projector_height == FILL and legend == "right":
            # The box is wider than high: the legend goes to the right, where a stack of
            # entries costs no height, and the top margin it had above the plot is given back.
            screen.update_layout(
                legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top"},
                margin={"t": 16},
            )
    chart.draw(
        screen,
        key=key,
        height=height,
        # No mode bar: it would cover the figures' top rows (the forest plot's column headers)
        # on hover; dragging still zooms, a double click resets, and files come from the
        # download buttons.
        config={"displayModeBar": False},
    )
    if notes:
        caption("  \n".join(escape_markdown(note) for note in notes))


def figure_downloads(fig: go.Figure | ShownFigure, stem: str, version: str) -> None:
    """Interactive HTML at once; PNG or SVG on request (drawn by Chromium, which takes seconds).

    The provenance is taken now, while the page runs: the HTML file is made later, when the
    button is clicked, outside any script run (no sidebar Context there), and the image
    fragment reruns without app.py (no Context either).
    """
    fig = fig.full if isinstance(fig, ShownFigure) else plain_figure(fig)
    provenance = current_provenance()
    html_col, static_col = st.columns([1, 3], vertical_alignment="bottom")
    html_col.download_button(
        "Interactive HTML",
        data=lambda: export_figure(stamped(fig, provenance), "html"),
        file_name=f"{stem}.html",
        mime="text/html",
        on_click="ignore",
        icon=":material/download:",
        key=f"{stem}:html",
    )
    with static_col:
        _static_export(fig, stem, version, provenance)
    if st.context.url:  # a browser is connected (script runs in tests start no Chromium)
        prepare_images()


@st.fragment
def _static_export(fig: go.Figure, stem: str, version: str, provenance: Provenance | None) -> None:
    ss = st.session_state
    store = f"_export:{stem}"
    row = st.container(horizontal=True, vertical_alignment="bottom")
    fmt = row.radio(
        "Image format", ["png", "svg"], horizontal=True, key=f"{stem}:fmt", format_func=str.upper
    )
    if row.button("Make image file", key=f"{stem}:make", icon=":material/image:"):
        with st.spinner(f"Drawing the {fmt.upper()} in a headless browser…"):
            try:
                ss[store] = (version, fmt, export_figure(stamped(fig, provenance), fmt))
            except AnalysisError as error:
                ss.pop(store, None)
                st.warning(f"No {fmt.upper()} this time: {escape_markdown(error)}")
            except Exception:
                ss.pop(store, None)
                LOG.exception("Figure export to %s failed", fmt)
                st.warning(
                    f"The {fmt.upper()} could not be drawn on this server; the interactive HTML "
                    "download works, and its camera icon saves a PNG."
                )
    made = ss.get(store)
    if made is not None and made[0] == version:
        _, made_fmt, content = made
        st.download_button(
            f"Download {made_fmt.upper()}",
            data=content,
            file_name=f"{stem}.{made_fmt}",
            mime="image/png" if made_fmt == "png" else "image/svg+xml",
            on_click="ignore",
            icon=":material/download:",
            key=f"{stem}:static",
        )


def provenance_for(run: AnalysisRun, ctx: loading.Context) -> Provenance:
    """Where the current analysis comes from, for every file a user downloads."""
    data = ctx.data
    if data.upload is not None:
        record = data.upload.record
        return Provenance.of(
            run,
            data.mapping,
            dataset=record.name,
            sha256=record.sha,
            title=f"Upload: {record.name}",
            uploaded=True,
            robust=run.robust,
        )
    return Provenance.of(
        run,
        data.mapping,
        dataset=data.dataset,
        sha256=bundled_sha256(data.dataset),
        title=data.title,
        simulated=data.simulated,
        link=sidebar.share_link(ctx.settings),
        robust=run.robust,
    )


def current_provenance() -> Provenance | None:
    """The provenance of the analysis this page run shows; None when there is no model."""
    ctx = sidebar.context()
    try:
        run = loading.fitted(ctx)
    except AnalysisError:
        return None
    return provenance_for(run, ctx)


def stamped(fig: go.Figure, provenance: Provenance | None) -> go.Figure:
    """The figure with ``provenance`` (taken at render time) as caption and metadata."""
    return fig if provenance is None else provenance.on_figure(fig)


def bullet_notes(notes: Sequence[str]) -> None:
    """Notes from alliance_core, shown as text (they may quote column names and levels)."""
    for note in notes:
        st.caption(escape_markdown(note))


def table(frame: pd.DataFrame, **options) -> None:
    """A static table. st.table renders Markdown in every cell, index label and header, so
    every text of ``frame`` goes through ``markdown_frame`` (user text shows literally)."""
    st.table(markdown_frame(frame), **options)


def dataframe(frame: pd.DataFrame, **options) -> None:
    """An interactive grid. The grid draws every cell and header as plain text (no Markdown,
    no HTML); no link or image column is ever configured, so user text stays text."""
    if "column_config" in options:
        raise ValueError("column types that render links or images are not used for user text")
    st.dataframe(frame, **options)


def about_alliance(data: loading.ActiveData) -> bool:
    """Uploads follow the alliance coding sheet; of the bundled tables only the alliance one does."""
    return data.info is None or "alliance" in data.info.name


def plain(text: str, ctx: loading.Context) -> str:
    """A plain-language reading, without "alliance–outcome" when the data are about another link."""
    if ctx.data is not None and not about_alliance(ctx.data):
        return text.replace("alliance–outcome ", "")
    return text


def reading_text(text: str, ctx: loading.Context) -> None:
    """A plain-language reading as a paragraph. Readings hold user text (a level or column
    name in a caution), so the paragraph is escaped: it shows as typed, never as Markdown.
    The hover defines the terms it shows."""
    shown = plain(text, ctx)
    st.markdown(escape_markdown(shown), help=with_definitions(shown))


def analysis_notes(run: AnalysisRun) -> None:
    """What the filter and the model left out (rows used, and why the rest were not), and the
    engine's own notes."""
    notes = list(run.notes) + [run.row_use()] + list(run.result.notes)
    for note in notes:
        caption(f":material/info: {escape_markdown(note)}")


def figure_columns(data: loading.ActiveData) -> dict[str, str]:
    """Role -> column for the figures' labels, sorting and hover text, from the mapping."""
    columns = {
        role: getattr(data.mapping, role)
        for role in ("study", "es_id", "label", "year", "n", "n_therapists")
        if getattr(data.mapping, role) is not None
    }
    if data.mapping.has_therapists:
        columns["ptr"] = "PTR"  # computed by effect_size_table
    return columns


def can_sort_by(sort: str, columns: dict[str, str], rows: pd.DataFrame) -> bool:
    """Whether the forest plot has the column a sort needs."""
    if sort in ("effect", "precision"):
        return True
    column = columns.get(sort, "label" if sort == "label" else None)
    if sort == "label":
        return True  # rows are always labelled (study names or numbers)
    return column is not None and column in rows.columns
