"""scripts/fetch_plotly_bundle.py: the chart bundle is taken only when its checksum is the
registry's, and it is the plotly.js that plotly.py writes figures for."""

from __future__ import annotations

import io
import tarfile

import pytest
from plotly.offline import get_plotlyjs_version

from pages._ui.chart import BUNDLE
from tests.tools import load_script, missing_tool

fetch = load_script("fetch_plotly_bundle")


def package(files: dict[str, bytes]) -> bytes:
    """A gzipped tarball laid out as npm packs one (everything under ``package/``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


TARBALL = package({fetch.BUNDLE_NAME: b"/* plotly */", "LICENSE": b"MIT"})


def test_the_bundle_is_the_plotly_js_of_plotly_py():
    assert get_plotlyjs_version() == fetch.VERSION
    assert BUNDLE.name == fetch.BUNDLE_NAME  # what the fetch writes is what the page serves


def test_a_package_with_the_published_checksum_is_unpacked(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "INTEGRITY", fetch.integrity_of(TARBALL))
    target = fetch.unpack(TARBALL, tmp_path / "static")
    assert target.read_bytes() == b"/* plotly */"
    assert (tmp_path / "static" / "plotly-LICENSE.txt").read_bytes() == b"MIT"
    # The two files and no half-written one.
    names = {p.name for p in (tmp_path / "static").iterdir()}
    assert names == {fetch.BUNDLE_NAME, "plotly-LICENSE.txt"}


def test_a_package_with_another_checksum_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "INTEGRITY", fetch.integrity_of(TARBALL))
    tampered = package({fetch.BUNDLE_NAME: b"/* not plotly */", "LICENSE": b"MIT"})
    with pytest.raises(ValueError, match="checksum"):
        fetch.unpack(tampered, tmp_path / "static")
    assert not (tmp_path / "static").exists()


def test_the_integrity_string_is_npms_sha512_form():
    # npm's dist.integrity of the bytes b"abc": SHA-512 in base64 (RFC 6234's test vector).
    assert fetch.integrity_of(b"abc") == (
        "sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw=="
    )


def test_the_fetched_bundle_is_that_version():
    if not BUNDLE.is_file():
        missing_tool(f"{BUNDLE} is missing (python scripts/fetch_plotly_bundle.py)", "chart")
    assert f"v{fetch.VERSION}" in BUNDLE.read_text(encoding="utf-8")[:300]
