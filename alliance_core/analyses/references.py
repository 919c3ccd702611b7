"""Reference levels that can carry a comparison.

Each coefficient of a categorical moderator is a difference from its reference level, so the
reference should rest on as much evidence as the data have:

- The default reference is the level with the most studies (ties: the level first in the
  model's alphabetical order, ``alliance_core.model.design.level_order``; without a study
  column each row counts as a study).
- A reference level chosen by the user must come from at least ``MIN_REFERENCE_STUDIES`` (2)
  studies; a level of one study is refused with the reason, and the next best is offered.
- A level from a single study is flagged wherever it appears (``single_study_notes``): its
  coefficient compares one study with the reference.

The engine's ``fit`` keeps R's factor rule (alphabetical first level) so that it reads like
``rma``; the analysis (``run_analysis``) passes the reference chosen here explicitly, and the
R and Python scripts written for a run name it (``relevel``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from alliance_core.errors import AnalysisError
from alliance_core.model.design import is_categorical, level_labels, level_order

MIN_REFERENCE_STUDIES = 2


def level_studies(rows: pd.DataFrame, column: str, study: str | None) -> dict[str, int]:
    """Number of studies (rows without a study column) per level of ``column``, in the model's
    level order."""
    labels = level_labels(rows[column])
    present = labels.notna()
    if study is not None and study in rows.columns:
        counts = rows[study][present].groupby(labels[present]).nunique()
    else:
        counts = labels[present].value_counts()
    return {level: int(counts[level]) for level in level_order(counts.index)}


def reference_order(rows: pd.DataFrame, column: str, study: str | None) -> tuple[str, ...]:
    """The levels with the default reference first (most studies), then the others in order."""
    studies = level_studies(rows, column, study)
    if not studies:
        return ()
    default = max(studies, key=lambda level: studies[level])  # max keeps the first of ties
    return (default, *(level for level in studies if level != default))


def reference_refusal(rows: pd.DataFrame, column: str, study: str | None, level: str) -> str | None:
    """Why ``level`` cannot be the reference of ``column`` (None when it can)."""
    studies = level_studies(rows, column, study)
    count = studies.get(str(level), 0)
    if count >= MIN_REFERENCE_STUDIES:
        return None
    offered = reference_order(rows, column, study)
    best = offered[0] if offered else None
    unit = "study" if study is not None else "row"
    plural = "studies" if unit == "study" else "rows"
    reason = (
        f"'{level}' cannot be the reference level of '{column}': it comes from "
        f"{_count(count, unit)}, so each coefficient of '{column}' would compare the other "
        f"levels with {'that one ' + unit if count == 1 else 'no data'}. A reference level needs "
        f"at least {MIN_REFERENCE_STUDIES} {plural}."
    )
    if best is not None and best != str(level):
        reason += f" The next best is '{best}' ({_count(studies[best], unit)})."
    return reason


def resolve_references(
    rows: pd.DataFrame,
    moderators: Iterable[str],
    chosen: Mapping[str, str],
    study: str | None,
) -> dict[str, str]:
    """The reference of every categorical moderator: the chosen one, else the default.

    Raises ``AnalysisError`` when a chosen reference comes from fewer than two studies (the
    message gives the reason and the next best level).
    """
    references = {}
    for column in moderators:
        if column not in rows.columns or not is_categorical(rows[column]):
            continue
        if column in chosen:
            refusal = reference_refusal(rows, column, study, str(chosen[column]))
            if refusal is not None and str(chosen[column]) in level_studies(rows, column, study):
                raise AnalysisError(refusal)
            references[column] = str(chosen[column])
            continue
        order = reference_order(rows, column, study)
        if order:
            references[column] = order[0]
    return references


def single_study_notes(
    rows: pd.DataFrame, moderators: Iterable[str], study: str | None
) -> list[str]:
    """A note for each level of a categorical moderator that comes from one study."""
    if study is None or study not in rows.columns:
        return []
    notes = []
    for column in moderators:
        if column not in rows.columns or not is_categorical(rows[column]):
            continue
        single = [
            level for level, count in level_studies(rows, column, study).items() if count == 1
        ]
        if not single:
            continue
        listed = ", ".join(f"'{level}'" for level in single)
        several = len(single) > 1
        notes.append(
            f"{'Levels' if several else 'Level'} {listed} of '{column}' "
            f"{'each come' if several else 'comes'} from a single study: "
            f"{'their coefficients compare' if several else 'its coefficient compares'} one "
            "study with the reference level, not a kind of study."
        )
    return notes


def _count(number: int, unit: str) -> str:
    if number == 1:
        return f"1 {unit}"
    return f"{number} {'studies' if unit == 'study' else unit + 's'}"
