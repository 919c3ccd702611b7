"""The glossary on the Methods page, and the same definitions on hover."""

from __future__ import annotations

from alliance_core.wording.glossary import GLOSSARY, define
from tests.app.conftest import run_page


def test_the_methods_page_has_the_glossary():
    at = run_page("pages/methods.py")
    glossary = next(e for e in at.expander if e.label == "The glossary")
    text = " ".join(m.value for m in glossary.markdown)
    for term, definition in GLOSSARY.items():
        assert f"**{term}**: {definition}" in text


def test_the_overview_explains_its_metrics_on_hover():
    at = run_page("pages/overview.py")
    helps = {m.label: m.help for m in at.metric}
    assert helps["95% prediction interval"] == define("Prediction interval")
    assert any(define("I²") in c.value for c in at.caption)
