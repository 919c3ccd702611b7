"""First page load per page, one user: ``python scripts/bench_page_load.py``.

For each page (Overview, Forest plot, Moderators & PTR, Sensitivity, Simulator) a new browser
context (Debian's Chromium driven by Playwright, no cache, no cookies) opens the page's address
and the clock stops when the page is complete: Streamlit connected and idle, no spinner, and
every Plotly chart drawn. Median over ``--repeats`` loads per page.

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
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# tests.e2e holds the browser setup; load_test the websocket client
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))

from load_test import PAGES, Session, SessionLog  # noqa: E402

CHART = '[data-testid="stPlotlyChart"]'
SPINNER = '[data-testid="stSpinner"]'


def start_server(port: int) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.headless", "true", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    server = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    subprocess.run([sys.executable, "deploy/warm.py", "--no-warm", str(port)], check=True)
    return server


def browser_load(browser, url: str) -> float:
    from tests.e2e.conftest import wait_for_app_ready

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        start = time.perf_counter()
        page.goto(url)
        wait_for_app_ready(page, 120_000)
        page.wait_for_selector(SPINNER, state="detached", timeout=120_000)
        page.wait_for_function(
            """(sel) => [...document.querySelectorAll(sel)].every(
                   c => c.querySelector('.main-svg'))""",
            arg=CHART,
            timeout=120_000,
        )
        return time.perf_counter() - start
    finally:
        context.close()


def server_load(base: str, page: str) -> float:
    log = SessionLog(0)

    async def once() -> None:
        session = Session(base, log)
        try:
            await session.open("", page)
        finally:
            await session.close()

    # Playwright's sync API runs an event loop in this thread: use another one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, once()).result()
    if log.errors:
        raise RuntimeError(f"{page}: {log.errors}")
    return log.first_load


def page_url(base: str, page: str) -> str:
    return base + ("/" if page == "overview" else f"/{page}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--port", type=int, default=8591)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

    load = os.getloadavg()
    print(f"{os.cpu_count()} cores; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    base = f"http://127.0.0.1:{args.port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            print("cold process (first request of a new process, per page):")
            for page in PAGES:
                server = start_server(args.port)
                try:
                    seconds = browser_load(browser, page_url(base, page))
                finally:
                    server.terminate()
                    server.wait(timeout=20)
                print(f"  {PAGES[page]:<17} Chromium {seconds:.2f} s")
            server = start_server(args.port)
            try:
                subprocess.run([sys.executable, "deploy/warm.py", str(args.port)], check=True)
                print(f"warm process (median of {args.repeats} new sessions per page):")
                for page in PAGES:
                    chromium = [
                        browser_load(browser, page_url(base, page)) for _ in range(args.repeats)
                    ]
                    ws = [server_load(base, page) for _ in range(args.repeats)]
                    verdict = "within" if statistics.median(chromium) <= 2.0 else "OVER"
                    print(
                        f"  {PAGES[page]:<17} Chromium {statistics.median(chromium):.2f} s "
                        f"(max {max(chromium):.2f}), server {statistics.median(ws):.2f} s; "
                        f"target 2 s: {verdict}"
                    )
            finally:
                server.terminate()
                server.wait(timeout=20)
        finally:
            browser.close()
    load = os.getloadavg()
    print(f"load average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
