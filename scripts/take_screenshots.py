"""Take the README's and the teaching guide's screenshots from the running dashboard.

Usage: python scripts/take_screenshots.py [--url http://localhost:8501]

Without --url it serves app.py itself (`streamlit run`, a free port) and stops it afterwards.
Chromium is Debian's (`apt-get install -y chromium`; CHROMIUM_PATH overrides the path). The
images are written to docs/img/: the Overview at 1500×860 and the lesson's step 5 in the
projector view at 1280×720, both on the simulated default dataset.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO_ROOT = Path(__file__).resolve().parents[1]
# The browser set-up of the browser tests and the server start of the page-load benchmark.
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))
from bench_page_load import start_server  # noqa: E402

from tests.e2e.conftest import APP_IDLE, CHROMIUM, CHROMIUM_ARGS  # noqa: E402

IMAGES = REPO_ROOT / "docs" / "img"
# (file, address after the base URL, viewport width, height)
SHOTS = [
    ("overview.png", "", 1500, 860),
    ("projector-lesson.png", "lesson?view=projector&lesson=ptr&step=5", 1280, 720),
]


def serve():
    """``streamlit run app.py`` on a free port, once it answers; the server and its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return start_server(port), f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running dashboard (default: serve one)")
    args = parser.parse_args()
    server, url = (None, args.url.rstrip("/")) if args.url else serve()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name, address, width, height in SHOTS:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(f"{url}/{address}")
                page.wait_for_selector(APP_IDLE, state="attached", timeout=60_000)
                page.wait_for_timeout(4_000)  # let Plotly finish drawing
                page.screenshot(path=str(IMAGES / name))
                page.close()
                print(f"wrote docs/img/{name} ({width}×{height})")
            browser.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
