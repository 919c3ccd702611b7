"""Wait until each Streamlit process answers, then open every page (and tab) once on each.

``python deploy/warm.py [--no-warm] PORT...`` (deploy/serve.sh runs it before nginx starts).
The first run in a process imports the scientific stack and fits the default dataset's
models (every tab of the Sensitivity page included); doing it here means the first student of
a lesson does not wait for it. With
ALLIANCE_FIT_CACHE_DIR set the fits are computed by the first process and read by the others.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from load_test import PAGES, Session, SessionLog  # noqa: E402

HEALTH_TIMEOUT = 120.0  # seconds; a first start imports the whole scientific stack


def wait_healthy(port: int) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"warm: nothing answers on port {port} after {HEALTH_TIMEOUT:.0f} s")
        time.sleep(0.2)


async def warm(port: int) -> list[str]:
    errors = []
    for page in PAGES:
        log = SessionLog(-1)
        session = Session(f"http://127.0.0.1:{port}", log)
        try:
            await session.open("", page)
            # A page whose tabs run only when opened (Sensitivity): open each tab once too.
            for label in list(session.tabs.options[1:] if session.tabs else []):
                await session.switch_tab(label)
        finally:
            await session.close()
        errors.extend(log.errors)
    return errors


async def warm_all(ports: list[int]) -> list[str]:
    # The first process fits (and fills the shared fit cache); the others then read it.
    errors = await warm(ports[0])
    for more in await asyncio.gather(*(warm(port) for port in ports[1:])):
        errors.extend(more)
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ports", type=int, nargs="+")
    parser.add_argument("--no-warm", dest="warm", action="store_false")
    args = parser.parse_args()
    for port in args.ports:
        wait_healthy(port)
    if not args.warm:
        return 0
    start = time.perf_counter()
    errors = asyncio.run(warm_all(args.ports))
    print(
        f"warm: {len(args.ports)} processes, every page and tab once, "
        f"{time.perf_counter() - start:.1f} s"
    )
    for error in errors:
        print(f"warm: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
