"""Fetch Plotly's basic bundle for the dashboard's charts: ``python scripts/fetch_plotly_bundle.py``.

The dashboard draws its figures with Plotly's basic bundle (scatter, bar and pie traces: all it
draws), served from ``static/`` (``pages/_ui/chart.py``): a quarter of the full bundle that
``st.plotly_chart`` loads, so a new session's first chart appears sooner (docs/benchmarks.md).
The file is not kept in the repository: ``make run``, ``make serve`` and ``make test`` fetch it
from the npm registry once, check it against the registry's published SHA-512, and put it in
``static/`` together with Plotly's licence. Without it (no network) the dashboard draws with
``st.plotly_chart`` as before.

The version is plotly.py's own plotly.js version (a test checks the two agree), so figures
built in Python are drawn by the plotly.js they were written for.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

PACKAGE = "plotly.js-basic-dist-min"
VERSION = "4.1.1"
# The registry's ``dist.integrity`` of that version (npm view plotly.js-basic-dist-min@4.1.1).
INTEGRITY = "sha512-1oNF8PeQx2hv/y7tqEVWKD3JGwn/MGEMQ8mL9HUwsaqG9FGy/OU5FHUHvzqbqxN4mnwZGI9abTiE775C4kkjMQ=="
REGISTRY = "https://registry.npmjs.org"
BUNDLE_NAME = "plotly-basic.min.js"
STATIC = Path(__file__).resolve().parents[1] / "static"


def tarball_url(registry: str = REGISTRY) -> str:
    return f"{registry.rstrip('/')}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"


def integrity_of(payload: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(payload).digest()).decode()


def unpack(payload: bytes, destination: Path) -> Path:
    """Check ``payload`` (the package's tarball) against :data:`INTEGRITY` and write its
    bundle and licence into ``destination``; returns the bundle's path."""
    found = integrity_of(payload)
    if found != INTEGRITY:
        raise ValueError(f"{PACKAGE}@{VERSION}: checksum {found} is not the registry's {INTEGRITY}")
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as archive:
        bundle = archive.extractfile(f"package/{BUNDLE_NAME}").read()
        licence = archive.extractfile("package/LICENSE").read()
    (destination / "plotly-LICENSE.txt").write_bytes(licence)
    target = destination / BUNDLE_NAME
    partial = target.with_suffix(".part")  # a reader never sees half a file
    partial.write_bytes(bundle)
    partial.replace(target)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", default=REGISTRY)
    parser.add_argument("--destination", type=Path, default=STATIC)
    args = parser.parse_args()
    try:
        with urllib.request.urlopen(tarball_url(args.registry), timeout=60) as response:
            payload = response.read()
        target = unpack(payload, args.destination)
    except (OSError, ValueError, KeyError, tarfile.TarError) as error:
        print(
            f"notice: Plotly's basic bundle was not fetched ({error}); the dashboard draws its "
            "charts with st.plotly_chart, whose first chart takes longer to appear.",
            file=sys.stderr,
        )
        return 1
    print(
        f"{target.relative_to(Path.cwd()) if target.is_relative_to(Path.cwd()) else target}: "
        f"{PACKAGE}@{VERSION}, {target.stat().st_size:,} bytes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
