"""Take the README's and the teaching guide's screenshots from the running dashboard.

Usage: python scripts/take_screenshots.py [--url http://localhost:8501]

Without --url it serves app.py itself (`streamlit run`, a free port) and stops it afterwards.
Chromium is Debian's (`apt-get install -y chromium`; CHROMIUM_PATH overrides the path). The
images are written to docs/img/: the Overview at 1500×860 and the lesson's step 5 in the
projector view at 1280×720, both on the simulated default dataset.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGES = REPO_ROOT / "docs" / "img"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
IDLE = (
    '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
    '[data-test-script-state="notRunning"]'
)
# (file, address after the base URL, viewport width, height)
SHOTS = [
    ("overview.png", "", 1500, 860),
    ("projector-lesson.png", "lesson?view=projector&lesson=ptr&step=5", 1280, 720),
]


def serve() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
            return server, url
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise SystemExit("the dashboard did not start within 60 s")


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
                page.wait_for_selector(IDLE, state="attached", timeout=60_000)
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
