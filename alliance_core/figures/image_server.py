"""One headless browser kept open for the figure images of a whole process.

kaleido draws SVG and PNG in a headless Chromium; starting one takes about three seconds, longer
than drawing a figure. The first image (or :func:`warm`) opens a browser on an event loop of its
own thread; later images reuse it. Every wait has a time limit: a browser that does not start,
crashes or hangs raises an error (the page says the image could not be drawn) and is replaced
at the next image. Callers from several threads (one per dashboard session) take turns.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading

from alliance_core.errors import AnalysisError

try:  # a requirement; without it the HTML export still works
    import kaleido
except ImportError:
    kaleido = None

START_SECONDS = 60.0  # a first start on a busy machine imports and launches Chromium
DRAW_SECONDS = 60.0
_TURN = threading.Lock()
_NO_KALEIDO = "PNG/SVG export needs the 'kaleido' package (pip install kaleido)."


class _Browser:
    """A kaleido browser on its own event-loop thread."""

    def __init__(self, path: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="figure-images", daemon=True
        )
        self.thread.start()
        try:
            self.kaleido = self._wait(self._open(path), START_SECONDS)
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise

    @staticmethod
    async def _open(path: str):
        # No MathJax: the figures use no LaTeX, and kaleido would otherwise fetch it from a CDN.
        return await kaleido.Kaleido(path=path, mathjax=False).__aenter__()

    def _wait(self, coroutine, seconds: float):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(seconds)

    def draw(self, fig_dict: dict, opts: dict) -> bytes:
        return self._wait(self.kaleido.calc_fig(fig_dict, opts=opts), DRAW_SECONDS)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._wait(self.kaleido.__aexit__(None, None, None), 10.0)
        self.loop.call_soon_threadsafe(self.loop.stop)


_browser: _Browser | None = None


def _open(path: str) -> _Browser:
    global _browser
    if _browser is None or not _browser.thread.is_alive():
        _browser = _Browser(path)
    return _browser


def warm(path: str) -> None:
    """Start the browser in the background, so that the first image is as quick as the rest."""
    if kaleido is None or _browser is not None:
        return

    def start() -> None:
        with _TURN, contextlib.suppress(Exception):  # the next image tries again and says why
            _open(path)

    threading.Thread(target=start, name="figure-images-start", daemon=True).start()


def draw(fig_dict: dict, opts: dict, path: str) -> bytes:
    """The figure as image bytes (kaleido ``calc_fig`` with ``opts``), drawn by the browser at
    ``path``. A browser that fails is closed, so the next image starts a new one."""
    global _browser
    if kaleido is None:
        raise AnalysisError(_NO_KALEIDO)
    with _TURN:
        browser = _open(path)
        try:
            return browser.draw(fig_dict, opts)
        except BaseException:
            browser.close()
            _browser = None
            raise


@atexit.register
def stop() -> None:
    """Close the browser (at exit, or a script that draws no more images)."""
    global _browser
    with _TURN:
        if _browser is not None:
            _browser.close()
            _browser = None
