"""First page load per page, one user: ``python scripts/bench_page_load.py``.

For each page (Overview, Forest plot, Moderators & PTR, Sensitivity, Simulator, Publication
bias) a new browser context (Debian's Chromium driven by Playwright, no cache, no cookies) opens
the page's address and the clock stops when the page is complete: Streamlit connected and idle, no spinner, and
every Plotly chart drawn; "first chart" stops the clock when the page's first Plotly chart is
drawn, and is compared with Streamlit's one-chart floor measured in the same run (issue #23:
chart pages within 1.3× of it): the floor's page is served beside the app and loaded just before
each load of a chart page, and the ratio is the median of these pairs. Median over
``--repeats`` loads per page.

Server: one ``streamlit run`` process started here, measured twice:
- "cold process": the first page request of a freshly started process (imports and fits);
- "warm process": after ``deploy/warm.py`` opened every page once, as ``make serve`` does
  before the first student arrives; every later load is a new session on this process.
A second figure per page, "server", is the same first load over the websocket without a
browser (page request to "script finished"), which separates the server's share from the
browser's. Target (issue #15): at most 2 s in Chromium on a quiet machine. Prints figures and
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# tests.e2e holds the browser setup; load_test the websocket client
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))

from load_test import PAGES, Session, SessionLog  # noqa: E402

# The load test's pages and the Publication bias page (its funnel is a chart page's first chart).
BENCH_PAGES = {**PAGES, "funnel": "Publication bias"}
CHART = ".js-plotly-plot"  # a Plotly chart, drawn by the dashboard's component or st.plotly_chart
FIRST_CHART_TARGET = 1.3  # × the one-chart floor (issue #23)
SPINNER = '[data-testid="stSpinner"]'


def start_server(port: int, script: str = "app.py") -> subprocess.Popen:
    command = [
        sys.executable, "-m", "streamlit", "run", script,
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.headless", "true", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    server = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    subprocess.run([sys.executable, "deploy/warm.py", "--no-warm", str(port)], check=True)
    return server


DRAWN = """([sel, n]) => [...document.querySelectorAll(sel)].filter(
                c => c.querySelector('.main-svg')).length >= n"""


def browser_load(browser, url: str, charts: int) -> float:
    """Seconds until the page is complete: idle, no spinner, and all ``charts`` Plotly charts
    drawn (a chart element appears only once Plotly's script has loaded, so the count the
    server sent is waited for, not just the charts already on the page)."""
    return browser_loads(browser, url, charts)[1]


def browser_loads(browser, url: str, charts: int) -> tuple[float | None, float]:
    """Seconds to the first Plotly chart drawn (None without charts) and to the complete page."""
    from tests.e2e.conftest import wait_for_app_ready

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        start = time.perf_counter()
        page.goto(url)
        first = None
        if charts:
            page.wait_for_function(DRAWN, arg=[CHART, 1], timeout=120_000, polling=10)
            first = time.perf_counter() - start
        wait_for_app_ready(page, 120_000)
        page.wait_for_selector(SPINNER, state="detached", timeout=120_000)
        page.wait_for_function(DRAWN, arg=[CHART, charts], timeout=120_000)
        return first, time.perf_counter() - start
    finally:
        context.close()


def server_load(base: str, page: str) -> tuple[float, int]:
    """The first load over the websocket: seconds, and the number of Plotly charts sent."""
    log = SessionLog(0)
    sent = []

    async def once() -> None:
        session = Session(base, log)
        try:
            await session.open("", page)
            sent.append(session.charts)
        finally:
            await session.close()

    # Playwright's sync API runs an event loop in this thread: use another one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, once()).result()
    if log.errors:
        raise RuntimeError(f"{page}: {log.errors}")
    return log.first_load, sent[0]


def page_url(base: str, page: str) -> str:
    return base + ("/" if page == "overview" else f"/{page}")


# The floor: Streamlit's own page with one two-point Plotly chart (nothing of this project's).
# Plotly's script (4.7 MB) loads only when a page first shows a chart, so this is the least a
# page with a chart can cost in this browser on this machine.
FLOOR_APP = """
import plotly.graph_objects as go
import streamlit as st

st.title("One chart")
if st.query_params.get("chart", "1") == "1":
    st.plotly_chart(go.Figure(go.Scatter(x=[1, 2], y=[1, 2])))
"""


@contextlib.contextmanager
def floor_server(browser, port: int, repeats: int) -> Iterator[str]:
    """Serve Streamlit's own page (``FLOOR_APP``) for the whole run; print its loads without
    and with one chart; yield the one-chart page's address, which ``measure_warm`` loads
    before each load of a chart page, so every ratio compares two loads seconds apart."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "floor.py").write_text(FLOOR_APP)
        server = start_server(port, script=str(Path(folder) / "floor.py"))
        try:
            base = f"http://127.0.0.1:{port}/"
            for query, charts, what in (("?chart=0", 0, "no chart"), ("", 1, "one chart")):
                seconds = [browser_load(browser, base + query, charts) for _ in range(repeats)]
                print(
                    f"  Streamlit page, {what:<9} Chromium {statistics.median(seconds):.2f} s "
                    f"(max {max(seconds):.2f})"
                )
            yield base
        finally:
            server.terminate()
            server.wait(timeout=20)


def measure_warm(browser, base: str, repeats: int, floor_url: str) -> dict[str, int]:
    """Every page, ``repeats`` new sessions each; returns the charts each page sent. Before
    each load of a chart page the floor's one-chart page is loaded: the first-chart ratio is
    the median of these pairs (the machine's speed drifts between minutes, not seconds)."""
    charts = {}
    for page in BENCH_PAGES:
        ws = [server_load(base, page) for _ in range(repeats)]
        charts[page] = ws[0][1]
        chromium, firsts, floors = [], [], []
        for _ in range(repeats):
            if charts[page]:
                floors.append(browser_loads(browser, floor_url, 1)[0])
            first, complete = browser_loads(browser, page_url(base, page), charts[page])
            chromium.append(complete)
            firsts.append(first)
        verdict = "within" if statistics.median(chromium) <= 2.0 else "OVER"
        first_chart = ""
        if charts[page]:
            ratio = statistics.median(f / g for f, g in zip(firsts, floors, strict=True))
            mark = "within" if ratio <= FIRST_CHART_TARGET else "OVER"
            first_chart = (
                f"; first chart {statistics.median(firsts):.2f} s, floor's chart "
                f"{statistics.median(floors):.2f} s: {ratio:.2f}× "
                f"(target {FIRST_CHART_TARGET}×: {mark})"
            )
        print(
            f"  {BENCH_PAGES[page]:<17} Chromium {statistics.median(chromium):.2f} s "
            f"(max {max(chromium):.2f}), server {statistics.median(s for s, _ in ws):.2f} s, "
            f"{charts[page]} chart(s); target 2 s: {verdict}{first_chart}"
        )
    return charts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--port", type=int, default=8591)
    parser.add_argument(
        "--url",
        help="measure a running server instead (e.g. make serve: http://127.0.0.1:8501); "
        "only the warm figures",
    )
    parser.add_argument("--no-cold", dest="cold", action="store_false")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

    load = os.getloadavg()
    print(f"{os.cpu_count()} cores; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            print(f"floor (median of {args.repeats} new sessions):")
            with floor_server(browser, args.port + 1, args.repeats) as floor_url:
                if args.url:
                    print(f"{args.url} (median of {args.repeats} new sessions per page):")
                    measure_warm(browser, args.url.rstrip("/"), args.repeats, floor_url)
                    return
                base = f"http://127.0.0.1:{args.port}"
                server = start_server(args.port)
                try:
                    subprocess.run([sys.executable, "deploy/warm.py", str(args.port)], check=True)
                    print(f"warm process (median of {args.repeats} new sessions per page):")
                    charts = measure_warm(browser, base, args.repeats, floor_url)
                finally:
                    server.terminate()
                    server.wait(timeout=20)
            if args.cold:
                print("cold process (first request of a new process, per page):")
                for page in BENCH_PAGES:
                    server = start_server(args.port)
                    try:
                        seconds = browser_load(browser, page_url(base, page), charts[page])
                    finally:
                        server.terminate()
                        server.wait(timeout=20)
                    print(f"  {BENCH_PAGES[page]:<17} Chromium {seconds:.2f} s")
        finally:
            browser.close()
            load = os.getloadavg()
            print(f"load average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
