"""Suggested column roles with their reasons: a study's total patients told from an effect size's n.

``suggest_mapping`` reads names only. A coding sheet often has two patient counts: the study's
total ("N patients") and the n of each correlation (which may be smaller: a subsample, a
completer analysis). Taking the total as n changes every sampling variance, so the data decide:

- A count column that is **constant within every study** and **at least as large as another
  count column in every row** is the study's total; the other column is the effect size's n
  when it varies within some study or is smaller in some row.
- A patient count whose name fits both roles ("patients", "N patients") and that is constant
  within every study, with no other count beside it, is **asked about**, not guessed: it is left
  unmapped and the Data page asks whether it is each effect size's n or the study's total.
- Every suggested role carries a sentence saying why (``RoleSuggestion.reasons``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads.mapping import suggest_mapping

# Names (normalised as in suggest_mapping) that could be either count: a question when unclear.
_EITHER_COUNT = ("patients", "npatients", "npat")
_SEPARATORS = re.compile(r"[\s_.\-()\[\]]+")


@dataclass(frozen=True)
class RoleSuggestion:
    """The suggested mapping, why each role was chosen, and what is left for the user."""

    mapping: ColumnMapping
    reasons: tuple[tuple[str, str], ...]  # (role, sentence)
    questions: tuple[str, ...] = ()


def _normal(name) -> str:
    return _SEPARATORS.sub("", str(name).casefold())


def _counts(frame: pd.DataFrame, column) -> np.ndarray | None:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    filled = values[np.isfinite(values)]
    if filled.size == 0 or np.any(filled != np.round(filled)) or np.any(filled <= 0):
        return None
    return values


def _constant_within_studies(frame: pd.DataFrame, study, values: np.ndarray) -> bool:
    groups = pd.Series(values).groupby(frame[study].to_numpy(), dropna=True)
    return bool((groups.nunique(dropna=True) <= 1).all())


def suggest_roles(frame: pd.DataFrame) -> RoleSuggestion:
    """``suggest_mapping`` by names, then n and the study total told apart by the data."""
    mapping = suggest_mapping(frame.columns)
    reasons = [
        (role, f"'{getattr(mapping, role)}' is named like {_ROLE_WORDS[role]}.")
        for role in _ROLE_WORDS
        if getattr(mapping, role) is not None
    ]
    questions: list[str] = []
    study = mapping.study
    n_column = mapping.n
    if study is None or n_column is None or list(frame.columns).count(n_column) != 1:
        return RoleSuggestion(mapping, tuple(reasons), ())
    n_values = _counts(frame, n_column)
    if n_values is None or not _constant_within_studies(frame, study, n_values):
        return RoleSuggestion(mapping, tuple(reasons), ())
    # n is constant within every study: is there a per-effect-size count beside it?
    taken = set(mapping.columns())
    others = []
    for column in frame.columns:
        if column in taken or list(frame.columns).count(column) != 1:
            continue
        if not _normal(column).startswith("n") and "size" not in _normal(column):
            continue
        values = _counts(frame, column)
        if values is None:
            continue
        both = np.isfinite(values) & np.isfinite(n_values)
        if both.any() and np.all(values[both] <= n_values[both]):
            varies = not _constant_within_studies(frame, study, values)
            smaller = bool(np.any(values[both] < n_values[both]))
            if varies or smaller:
                others.append(column)
    reasons = [(role, text) for role, text in reasons if role not in ("n", "study_patients")]
    if len(others) == 1 and mapping.study_patients is None:
        per_es = others[0]
        mapping = replace(mapping, n=per_es, study_patients=n_column)
        reasons += [
            (
                "n",
                f"'{per_es}' is each effect size's n: it is never larger than '{n_column}' and "
                "differs from it (or within a study).",
            ),
            (
                "study_patients",
                f"'{n_column}' is the study's total: it has one value per study and is at least "
                f"'{per_es}' in every row.",
            ),
        ]
    elif not others and _normal(n_column) in _EITHER_COUNT:
        mapping = replace(mapping, n=None)
        questions.append(
            f"'{n_column}' has one value per study: is it each effect size's n (choose it as "
            "'Patients n') or the study's total (choose it as 'Study patients' and choose the "
            "effect sizes' n)? It is left unmapped until you say."
        )
    else:
        reasons.append(("n", f"'{n_column}' is named like a sample size (one value per study)."))
        if mapping.study_patients is not None:
            reasons.append(
                (
                    "study_patients",
                    f"'{mapping.study_patients}' is named like the study's patients.",
                )
            )
    return RoleSuggestion(mapping, tuple(reasons), tuple(questions))


_ROLE_WORDS = {
    "study": "a study id",
    "es_id": "an effect-size id",
    "r": "a correlation",
    "z": "Fisher's z",
    "n": "a sample size",
    "yi": "an effect size",
    "vi": "a sampling variance",
    "sei": "a standard error",
    "n_therapists": "a therapist count",
    "study_patients": "the study's patients",
    "ptr": "a patient–therapist ratio",
    "label": "a study label",
    "year": "a year",
}
