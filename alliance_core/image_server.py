"""One headless browser kept open for the figure images of a whole process.

kaleido draws SVG and PNG in a headless Chromium; starting one takes about three seconds, longer
than drawing a figure. The first image starts kaleido's own background server, later images
reuse it. kaleido's server takes one task at a time and matches answers to callers by order,
so callers from several threads (one per dashboard session) take turns through a lock.
"""

from __future__ import annotations

import threading

from alliance_core.errors import AnalysisError

try:  # a requirement; without it the HTML export still works
    import kaleido
    from kaleido import _global_server
except ImportError:
    kaleido = None

_TURN = threading.Lock()


def _server_alive() -> bool:
    server = _global_server
    if not server.is_running():
        return False
    # The server's thread ends when its browser crashes; a call would then wait forever.
    thread = getattr(server, "_thread", None)
    return thread is not None and thread.is_alive()


def _start(browser: str) -> None:
    if not _server_alive():
        if _global_server.is_running():
            _global_server.close(silence_warnings=True)
        kaleido.start_sync_server(path=browser, mathjax=False, silence_warnings=True)


def warm(browser: str) -> None:
    """Start the browser in the background, so that the first image is as quick as the rest."""
    if kaleido is None or _server_alive():
        return

    def start() -> None:
        with _TURN:
            _start(browser)

    threading.Thread(target=start, name="image-server-start", daemon=True).start()


def draw(fig_dict: dict, opts: dict, browser: str) -> bytes:
    """The figure as image bytes (kaleido ``calc_fig`` with ``opts``), drawn by ``browser``.

    No MathJax: the figures use no LaTeX, and kaleido would otherwise fetch it from a CDN.
    """
    if kaleido is None:
        raise AnalysisError("PNG/SVG export needs the 'kaleido' package (pip install kaleido).")
    with _TURN:
        _start(browser)
        return kaleido.calc_fig_sync(fig_dict, opts=opts)


def stop() -> None:
    """Close the browser (tests, or a process that draws no more images)."""
    if kaleido is None:
        return
    with _TURN:
        if _global_server.is_running():
            kaleido.stop_sync_server(silence_warnings=True)
