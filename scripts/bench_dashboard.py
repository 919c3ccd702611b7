"""Benchmark of the dashboard's responsiveness: ``python scripts/bench_dashboard.py``.

Measures, on the bundled default dataset and the Moderators & PTR page, how long it takes from
toggling a moderator (``design``) in the sidebar until the page has been redrawn:

(a) server side, with Streamlit's AppTest: the time of the rerun the toggle triggers, median over
    ``--toggles`` toggles after warm-up, once with the fits cached (toggling back and forth, as
    a user exploring does) and once with the fit cache emptied before every toggle (a choice
    nobody made before, so the model is refitted);
(b) in a real browser (Debian's Chromium driven by Playwright, app served by ``streamlit run``):
    from the click on the moderator to the PTR chart showing the new curve, median over
    ``--browser-toggles`` toggles after warm-up.

Targets (issue #5): (a) at most 250 ms, (b) at most 1.5 s. The script prints figures and asserts
nothing; run it on an otherwise idle machine for figures worth quoting.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# app.py imports the `pages._*` helpers; tests.e2e holds the browser setup
sys.path.insert(0, str(REPO_ROOT))

MODERATOR = "design"
PAGE = "pages/moderators.py"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} cores, {cpu}; load average {load:.2f} at start"


def summary(name: str, seconds: list[float], target: float) -> str:
    ms = [1000 * s for s in seconds]
    median = statistics.median(ms)
    verdict = "within" if median <= 1000 * target else "OVER"
    return (
        f"{name}: median {median:.0f} ms (min {min(ms):.0f}, max {max(ms):.0f}, n = {len(ms)}); "
        f"target {1000 * target:.0f} ms: {verdict}"
    )


# -- (a) server side -----------------------------------------------------------------------------
def bench_server(toggles: int, warmup: int) -> tuple[list[float], list[float]]:
    from streamlit.testing.v1 import AppTest

    from pages import _loading as loading
    from pages import _session as session

    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page(PAGE).run()

    def toggle() -> float:
        box = at.multiselect(key=session.MODERATORS)
        box = box.unselect(MODERATOR) if MODERATOR in box.value else box.select(MODERATOR)
        start = time.perf_counter()
        box.run()
        elapsed = time.perf_counter() - start
        if at.exception or at.error:
            raise RuntimeError(f"the page failed: {[e.value for e in at.error]}")
        return elapsed

    for _ in range(warmup):
        toggle()
    cached = [toggle() for _ in range(toggles)]
    refitted = []
    for _ in range(toggles):
        loading.cached_fit.clear()
        refitted.append(toggle())
    return cached, refitted


# -- (b) in the browser --------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return server, url
        except OSError:
            time.sleep(0.3)
    server.terminate()
    raise RuntimeError("streamlit did not start within 90 s")


def bench_browser(toggles: int, warmup: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, wait_for_app_ready
    from tests.e2e.test_dashboard import curve_y, sidebar, wait_for_curve

    server, url = _serve()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.goto(f"{url}/moderators")
            wait_for_app_ready(page, 90_000)
            wait_for_curve(page)
            box = sidebar(page).get_by_role("combobox", name="Moderators", exact=True)
            remove = sidebar(page).get_by_role("button", name=f"Remove {MODERATOR}", exact=True)

            def toggle() -> float:
                before = curve_y(page)
                if remove.count():
                    start = time.perf_counter()
                    remove.click()
                else:
                    box.click()
                    box.press_sequentially(MODERATOR)  # typing is the user's, not the app's time
                    option = page.get_by_role("option", name=MODERATOR, exact=True)
                    option.wait_for()
                    start = time.perf_counter()
                    option.click()
                wait_for_curve(page, different_from=before)
                elapsed = time.perf_counter() - start
                page.keyboard.press("Escape")
                wait_for_app_ready(page)
                return elapsed

            for _ in range(warmup):
                toggle()
            times = [toggle() for _ in range(toggles)]
            browser.close()
            return times
    finally:
        server.terminate()
        server.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--toggles", type=int, default=20, help="server-side toggles (a)")
    parser.add_argument("--browser-toggles", type=int, default=10, help="browser toggles (b)")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--no-browser", action="store_true", help="skip (b)")
    args = parser.parse_args()

    print(f"Machine: {machine()}")
    cached, refitted = bench_server(args.toggles, args.warmup)
    print(summary("(a) server, toggle with fits cached", cached, 0.25))
    print(summary("(a) server, toggle with a new fit", refitted, 0.25))
    if not args.no_browser:
        browser = bench_browser(args.browser_toggles, args.warmup)
        print(summary("(b) browser, click to updated PTR chart", browser, 1.5))


if __name__ == "__main__":
    main()
