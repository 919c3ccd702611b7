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

Targets (issue #5): (a) at most 250 ms, (b) at most 1.5 s.

The forest plot's "Show every effect size" (811 rows on the default data) against the
per-study plot (152 rows), target: within 3x of it:

(c) server side: building the figure (``forest_figure``, both layouts the page sends) and the
    AppTest rerun of the Forest page, median over ``--forest-runs``;
(d) in Chromium: from the click on the toggle until the plot shows every row, and back.

The script prints figures and asserts nothing; run it on an otherwise idle machine for figures
worth quoting.
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

    from pages._ui import loading, session

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
        loading.cached_state.clear()  # the fitted models of every state
        refitted.append(toggle())
    return cached, refitted


# -- (c) forest plot, server side ------------------------------------------------------------------
FOREST_PAGE = "pages/forest.py"
FOREST_TOGGLE = "forest:all"


def bench_forest_server(runs: int) -> dict[str, list[float]]:
    from streamlit.testing.v1 import AppTest

    import alliance_core as ac
    from alliance_core.figures import forest_figure

    data = ac.escalc(ac.load_dataset(ac.datasets.DEFAULT_DATASET), r="r", n="n", measure="ZCOR")
    res = ac.fit(data, cluster="study")
    times: dict[str, list[float]] = {}
    for show_all, name in ((False, "per study"), (True, "every effect size")):
        build = []
        for _ in range(runs):
            start = time.perf_counter()
            for layout in ("wide", "compact"):
                forest_figure(res, show_all_effect_sizes=show_all, layout=layout)
            build.append(time.perf_counter() - start)
        times[f"(c) server, build both forest figures, {name}"] = build

    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page(FOREST_PAGE).run()
    reruns: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(runs):
        for show_all in (True, False):
            toggle = at.toggle(key=FOREST_TOGGLE).set_value(show_all)
            start = time.perf_counter()
            toggle.run()
            reruns[show_all].append(time.perf_counter() - start)
            if at.exception or at.error:
                raise RuntimeError(f"the page failed: {[e.value for e in at.error]}")
    times["(c) server, Forest page rerun, per study"] = reruns[False]
    times["(c) server, Forest page rerun, every effect size"] = reruns[True]
    return times


# -- (d) forest plot in the browser -----------------------------------------------------------------
# Points drawn in the visible forest plot's trace of study or effect-size rows.
FOREST_POINTS = """(role) => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')]
    .find(p => p.offsetParent !== null && p._fullData);
  if (!gd) return 0;
  const trace = gd._fullData.find(t => t.meta && t.meta.role === role);
  if (!trace) return 0;
  const group = [...gd.querySelectorAll('.scatterlayer .trace')]
    .find(g => g.__data__ && g.__data__[0] && g.__data__[0].trace.index === trace.index);
  return group ? group.querySelectorAll('.points path').length : 0;
}"""


def bench_forest_browser(runs: int, warmup: int, k: int, studies: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, wait_for_app_ready

    server, url = _serve()
    times: dict[bool, list[float]] = {False: [], True: []}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.goto(f"{url}/forest")
            wait_for_app_ready(page, 120_000)
            page.wait_for_function(f"({FOREST_POINTS})('studies') === {studies}", timeout=120_000)
            toggle = page.get_by_text("Show every effect size", exact=True)

            def flip(show_all: bool) -> float:
                role, rows = ("effect sizes", k) if show_all else ("studies", studies)
                start = time.perf_counter()
                toggle.click()
                page.wait_for_function(
                    f"({FOREST_POINTS})('{role}') === {rows}", timeout=300_000, polling=50
                )
                elapsed = time.perf_counter() - start
                wait_for_app_ready(page, 120_000)
                return elapsed

            for _ in range(warmup):
                flip(True)
                flip(False)
            for _ in range(runs):
                times[True].append(flip(True))
                times[False].append(flip(False))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    return {
        "(d) browser, click to drawn forest plot, per study": times[False],
        "(d) browser, click to drawn forest plot, every effect size": times[True],
    }


def forest_summary(times: dict[str, list[float]]) -> list[str]:
    """Medians of each measurement, and each "every effect size" median over its per-study one
    (target: at most 3x)."""
    lines = []
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        ms = [1000 * v for v in values]
        lines.append(
            f"{name}: median {statistics.median(ms):.0f} ms "
            f"(min {min(ms):.0f}, max {max(ms):.0f}, n = {len(ms)})"
        )
        if name.endswith("every effect size"):
            per_study = medians[name.replace("every effect size", "per study")]
            ratio = medians[name] / per_study
            verdict = "within" if ratio <= 3 else "OVER"
            lines.append(f"    ratio to per study: {ratio:.1f}x; target 3x: {verdict}")
    return lines


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
    from tests.e2e.test_dashboard import curve_y, moderator_label, sidebar, wait_for_curve

    server, url = _serve()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.goto(f"{url}/moderators")
            wait_for_app_ready(page, 90_000)
            wait_for_curve(page)
            box = sidebar(page).get_by_role("combobox", name="Moderators", exact=True)
            remove = sidebar(page).get_by_role(
                "button", name=f"Remove {moderator_label(MODERATOR)}", exact=True
            )

            def toggle() -> float:
                before = curve_y(page)
                if remove.count():
                    start = time.perf_counter()
                    remove.click()
                else:
                    box.click()
                    box.press_sequentially(MODERATOR)  # typing is the user's, not the app's time
                    # The list shows a moderator by its display name with its column code.
                    option = page.get_by_role("option", name=moderator_label(MODERATOR), exact=True)
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
    parser.add_argument("--no-browser", action="store_true", help="skip (b) and (d)")
    parser.add_argument("--forest-runs", type=int, default=5, help="forest runs (c), (d)")
    parser.add_argument("--forest-only", action="store_true", help="only (c) and (d)")
    args = parser.parse_args()

    print(f"Machine: {machine()}")
    forest = bench_forest_server(args.forest_runs)
    if not args.no_browser:
        import alliance_core as ac

        sheet = ac.load_dataset(ac.datasets.DEFAULT_DATASET)
        forest |= bench_forest_browser(
            args.forest_runs, 1, k=len(sheet), studies=sheet["study"].nunique()
        )
    for line in forest_summary(forest):
        print(line)
    if args.forest_only:
        return
    cached, refitted = bench_server(args.toggles, args.warmup)
    print(summary("(a) server, toggle with fits cached", cached, 0.25))
    print(summary("(a) server, toggle with a new fit", refitted, 0.25))
    if not args.no_browser:
        browser = bench_browser(args.browser_toggles, args.warmup)
        print(summary("(b) browser, click to updated PTR chart", browser, 1.5))


if __name__ == "__main__":
    main()
