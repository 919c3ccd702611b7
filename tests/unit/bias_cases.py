"""The metafor_bias fixture cases, shared by test_bias.py and test_sensitivity.py."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pandas as pd

import alliance_core as ac

FIXTURES = Path(__file__).parents[1] / "fixtures" / "metafor_bias"


@functools.cache
def load(name: str) -> tuple[dict, ac.MetaResult]:
    """A fixture case and the engine's fit of the same model."""
    case = json.loads((FIXTURES / f"{name}.json").read_text())
    s = case["settings"]
    res = ac.fit(
        pd.DataFrame(case["data"]),
        moderators=s.get("moderators") or None,
        reference=s.get("reference") or None,
        method=s["method"],
        test=s["test"],
        cluster="study" if s["model"] == "three-level" else None,
    )
    return case, res


def cases_with(analysis: str) -> list[str]:
    """Fixture cases whose results include ``analysis`` (a top-level key of "results")."""
    return [path.stem for path in sorted(FIXTURES.glob("*.json")) if analysis in results_of(path)]


@functools.cache
def results_of(path: Path) -> frozenset[str]:
    return frozenset(json.loads(path.read_text())["results"])
