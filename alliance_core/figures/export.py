"""Figure export: SVG and PNG through kaleido and a headless Chromium, or self-contained HTML."""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import plotly.graph_objects as go

from alliance_core.errors import AnalysisError
from alliance_core.figures import image_server

# -- export ------------------------------------------------------------------------------------
EXPORT_FORMATS = ("svg", "png", "html")
MAX_PNG_PIXELS = 8_000_000  # e.g. 1630 x 4900 px: print quality for a page, drawn in ~2 s
_BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_browser() -> str | None:
    """A Chromium-family browser for kaleido: ``BROWSER_PATH``, else one on PATH (e.g. Debian's
    /usr/bin/chromium), else a copy fetched by ``plotly_get_chrome``/``kaleido_get_chrome``."""
    configured = os.environ.get("BROWSER_PATH")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for name in _BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    try:
        from choreographer.browsers.chromium import Chromium

        return Chromium.find_browser(skip_local=False)
    except Exception:  # any failure of the optional lookup just means "not found"
        return None


def _print_ready(fig: go.Figure) -> go.Figure:
    """A copy on white with dark text: exports must not inherit a dark or transparent theme."""
    out = go.Figure(fig)
    out.update_layout(
        template="plotly_white",
        paper_bgcolor="white",
        plot_bgcolor="white",
        font={"color": "#222222"},
    )
    return out


def export_figure(
    fig: go.Figure,
    fmt: str = "svg",
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float = 2.0,
) -> bytes:
    """The figure as SVG, PNG (white background) or a self-contained HTML page.

    HTML embeds plotly.js (works offline). SVG and PNG are drawn by kaleido 1.x in a headless
    Chromium-family browser: ``BROWSER_PATH`` names one, otherwise the first of chromium /
    chromium-browser / google-chrome on PATH is used (Debian: ``apt-get install chromium``).
    Width defaults to the figure's, else 1000 px; ``scale`` multiplies PNG resolution, up to
    ``MAX_PNG_PIXELS`` pixels in all.
    """
    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise AnalysisError(f"Export format '{fmt}' is not supported; choose svg, png or html.")
    if fmt == "html":
        return fig.to_html(include_plotlyjs=True, full_html=True).encode("utf-8")
    printable = _print_ready(fig)
    width = width or fig.layout.width or 1000
    height = height or fig.layout.height or 600
    if fmt == "png":
        # A tall forest plot (800 rows: 1000 x 3000 px) at scale 2 is 12 million pixels and
        # takes the browser seconds to paint and send; past MAX_PNG_PIXELS the scale shrinks.
        scale = min(scale, math.sqrt(MAX_PNG_PIXELS / (width * height)))
    opts = {
        "format": fmt,
        "width": width,
        "height": height,
        "scale": scale if fmt == "png" else 1,
    }
    browser = find_browser()
    if browser is None:
        raise AnalysisError(_NO_BROWSER)
    return image_server.draw(printable.to_dict(), opts, browser)


_NO_BROWSER = (
    "PNG/SVG export needs Chromium (or Chrome): install it (Debian: apt-get install chromium) "
    "or set BROWSER_PATH to its executable. HTML export works without it."
)


def prepare_images() -> None:
    """Open the headless browser in the background (a page about to offer image downloads)."""
    browser = find_browser()
    if browser is not None:
        image_server.warm(browser)


@contextmanager
def export_session() -> Iterator[None]:
    """Several exports, then the headless browser closed (a script's run; the dashboard keeps
    its browser for the whole process)::

        with export_session():
            for name, fig in figures.items():
                path.write_bytes(export_figure(fig, "png"))
    """
    if find_browser() is None:
        raise AnalysisError(_NO_BROWSER)
    try:
        yield
    finally:
        image_server.stop()
