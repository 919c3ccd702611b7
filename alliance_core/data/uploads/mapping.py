"""Suggesting which column of an uploaded table plays which role, and which could be moderators."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import pandas as pd

from alliance_core.data.mapping import ColumnMapping

# Normalised names (lower case, without spaces, underscores, dots and hyphens) per role,
# most specific first. A column gets at most one role.
_ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "study": ("study", "studyid", "studyno", "id"),
    "es_id": ("esid", "es", "effectsizeid", "esno"),
    "r": ("r", "ri", "rao", "cor", "corr", "correlation"),
    "z": ("z", "zi", "fisherz", "zr"),
    "n": ("n", "ni", "npatients", "samplesize", "npat", "patients"),
    "n_therapists": (
        "ntherapists",
        "therapists",
        "nther",
        "ktherapists",
        "ntherapist",
        "kther",
    ),
    # The study's total patients: named after n took its column, so a lone "Patients" column
    # stays n (today's PTR rule) and a "Patients" column beside "n" becomes the study count.
    "study_patients": (
        "studypatients",
        "patientsstudy",
        "totalpatients",
        "ntotal",
        "npatientsstudy",
        "patients",
    ),
    "ptr": ("ptr", "patienttherapistratio"),
    "yi": ("yi", "effectsize", "smd", "logor"),
    "vi": ("vi", "vz", "variance", "samplingvariance", "var"),
    "sei": ("sei", "se", "standarderror", "sez", "sed"),
    "label": ("label", "studylabel", "author", "authors", "citation", "reference"),
    "year": ("year", "pubyear", "publicationyear"),
}
_SEPARATORS = re.compile(r"[\s_.\-]+")


def _normalise(name) -> str:
    return _SEPARATORS.sub("", str(name).replace("\ufeff", "").casefold())


def suggest_mapping(columns: Iterable) -> ColumnMapping:
    """Suggest a role for columns whose names say what they hold.

    Matching ignores case, spaces, underscores, dots and hyphens ("N", "n_patients",
    "Sample size" → n). No moderators are suggested: the choice of moderators is a research
    decision, so the user picks them from ``moderator_candidates``.
    """
    by_normal_name: dict[str, str] = {}
    for column in columns:
        by_normal_name.setdefault(_normalise(column), column)
    taken: set = set()
    roles: dict[str, str] = {}
    for role, names in _ROLE_NAMES.items():
        for name in names:
            column = by_normal_name.get(name)
            if column is not None and column not in taken:
                roles[role] = column
                taken.add(column)
                break
    return ColumnMapping(**roles)


def moderator_candidates(df: pd.DataFrame, mapping: ColumnMapping) -> list:
    """Columns that could serve as moderators, in table order.

    Left out: columns with another role, columns with fewer than two distinct values, and text
    columns in which every value differs (names, notes: they identify rows, they do not group
    them). Moderators already chosen in ``mapping`` are kept.
    """
    role_columns = set(mapping.columns()) - set(mapping.moderators)
    name_counts = Counter(df.columns)
    candidates = []
    for column in df.columns:
        if column in role_columns or name_counts[column] > 1:
            continue
        if column in mapping.moderators or _could_group(df[column].dropna()):
            candidates.append(column)
    return candidates


def _could_group(values: pd.Series) -> bool:
    """At least two values, and (for text) some value shared by several rows."""
    try:
        distinct = values.nunique()
    except TypeError:  # unhashable cells
        return False
    return distinct >= 2 and (_is_numeric_column(values) or distinct < len(values))


def _is_numeric_column(values: pd.Series) -> bool:
    return values.dtype.kind in "iuf"
