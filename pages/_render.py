"""Drawing helpers every page uses: header, errors shown as messages, plots, notes, downloads."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from alliance_core.analysis import AnalysisRun
from alliance_core.errors import AnalysisError
from alliance_core.figures import export_figure, split_caption
from alliance_core.formatting import escape_markdown
from alliance_core.settings import PTR, AnalysisSettings
from pages import _session as session
from pages import _tables as tables

if TYPE_CHECKING:  # types only: importing them at run time would make an import cycle
    from pages import _loading as loading
    from pages import _sidebar as sidebar

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
        st.error(str(error), icon=":material/error:")
    except Exception:
        LOG.exception("Unexpected error while drawing %s", what.lower())
        st.error(
            f"{UNEXPECTED}: {what.lower()} could not be shown. The rest of the dashboard still "
            "works; the details are in the server log.",
            icon=":material/error:",
        )


def describe_settings(settings: AnalysisSettings) -> str:
    model = "Three-level" if settings.model == "three-level" else "Two-level"
    test = {"z": "z", "t": "Knapp–Hartung" if settings.model == "two-level" else "t"}[settings.test]
    moderators = [
        session.PTR_SCALE_LABELS[settings.ptr_scale] if m == PTR else m for m in settings.moderators
    ]
    parts = [f"{model} {settings.method}", f"{test} tests"]
    parts.append("moderators: " + ", ".join(moderators) if moderators else "no moderators")
    for column, levels in settings.filters.items():
        parts.append(f"only {column} = {' / '.join(levels)}")
    return " · ".join(parts)


def page_header(title: str, ctx: sidebar.Context, *, needs_data: bool = True) -> bool:
    """Title, the data and model in one line (SIMULATED when it is), and whether to go on."""
    st.title(title)
    if ctx.data is None:
        if needs_data:
            st.info(ctx.problem or "No data to analyse.", icon=":material/upload_file:")
            st.page_link(
                ctx.pages["data"], label="Go to the Data page", icon=":material/table_view:"
            )
        return not needs_data
    badge = ":orange-badge[:material/science: SIMULATED] " if ctx.data.simulated else ""
    st.markdown(f"{badge}**{ctx.data.title}**  \n{describe_settings(ctx.settings)}")
    return True


def plot(fig: go.Figure, key: str) -> None:
    """The figure, with its caption as wrapping text under it (an in-figure caption does not
    wrap and would be cut on narrow screens); downloads keep the caption in the figure."""
    screen, notes = split_caption(fig)
    st.plotly_chart(
        screen,
        key=key,
        theme="streamlit",
        # No mode bar: it would cover the figures' top rows (the forest plot's column headers)
        # on hover; dragging still zooms, a double click resets, and files come from the
        # download buttons.
        config={"displayModeBar": False},
    )
    if notes:
        st.caption("  \n".join(escape_markdown(note) for note in notes))


def figure_downloads(fig: go.Figure, stem: str, version: str) -> None:
    """Interactive HTML at once; PNG or SVG on request (drawn by Chromium, which takes seconds)."""
    html_col, static_col = st.columns([1, 3], vertical_alignment="bottom")
    html_col.download_button(
        "Interactive HTML",
        data=lambda: export_figure(fig, "html"),
        file_name=f"{stem}.html",
        mime="text/html",
        on_click="ignore",
        icon=":material/download:",
        key=f"{stem}:html",
    )
    with static_col:
        _static_export(fig, stem, version)


@st.fragment
def _static_export(fig: go.Figure, stem: str, version: str) -> None:
    ss = st.session_state
    store = f"_export:{stem}"
    row = st.container(horizontal=True, vertical_alignment="bottom")
    fmt = row.radio(
        "Image format", ["png", "svg"], horizontal=True, key=f"{stem}:fmt", format_func=str.upper
    )
    if row.button("Make image file", key=f"{stem}:make", icon=":material/image:"):
        with st.spinner(f"Drawing the {fmt.upper()} in a headless browser…"):
            try:
                ss[store] = (version, fmt, export_figure(fig, fmt))
            except AnalysisError as error:
                ss.pop(store, None)
                st.warning(f"No {fmt.upper()} this time: {error}")
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


def bullet_notes(notes: Sequence[str]) -> None:
    for note in notes:
        st.caption(note)


def about_alliance(data: loading.ActiveData) -> bool:
    """Uploads follow the alliance coding sheet; of the bundled tables only the alliance one does."""
    return data.info is None or "alliance" in data.info.name


def plain(text: str, ctx: sidebar.Context) -> str:
    """A plain-language reading, without "alliance–outcome" when the data are about another link."""
    if ctx.data is not None and not about_alliance(ctx.data):
        return text.replace("alliance–outcome ", "")
    return text


def analysis_notes(run: AnalysisRun) -> None:
    """What the filter and the model left out, and the engine's own notes."""
    notes = list(run.notes) + list(run.result.notes)
    dropped = run.result.dropped
    if not dropped.empty:
        reasons = dropped["reason"].value_counts()
        notes.append(
            f"{len(dropped)} row(s) left out by the model: "
            + "; ".join(f"{count} with {reason}" for reason, count in reasons.items())
            + "."
        )
    for note in notes:
        st.caption(f":material/info: {note}")


def download_stem(ctx: sidebar.Context) -> str:
    return "alliance-upload" if ctx.data.upload is not None else ctx.data.dataset


def result_downloads(run: AnalysisRun, ctx: sidebar.Context) -> None:
    """Results table, analysed rows and settings; files are made only when clicked."""
    stem = download_stem(ctx)
    on_r = ctx.data.correlations
    row = st.container(horizontal=True)
    row.download_button(
        "Results (CSV)",
        data=lambda: tables.results_csv(run, on_r),
        file_name=f"{stem}-results.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key="download:results",
        help="Coefficients, the average effect, heterogeneity and tests, one row per number.",
    )
    row.download_button(
        "Analysed rows (CSV)",
        data=lambda: tables.data_csv(run),
        file_name=f"{stem}-analysed-rows.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key="download:rows",
        help="The rows the model was fitted to (after exclusions and the filter), with yi and vi.",
    )
    row.download_button(
        "Settings (JSON)",
        data=ctx.settings.to_json(),
        file_name="alliance-settings.json",
        mime="application/json",
        on_click="ignore",
        icon=":material/download:",
        key="download:settings",
        help="Load it again in the sidebar under 'Share or save this view'.",
    )


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
