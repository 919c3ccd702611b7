"""Level hygiene: spellings of one level of a categorical column read as one level.

Coding sheets spell a level several ways: 'patient', 'Patient', 'PATIENT', 'self  report'
with two spaces, 'ﬁrst' with a ligature. Left alone, each spelling becomes its own coefficient.

The rule
    Two values of a moderator column are one level when they have the same ``level_key``:
    the same text after Unicode compatibility normalisation (NFKC, which includes NFC), case
    folding, and collapsing runs of spaces (surrounding spaces are already gone when a file is
    read). The level is shown under its most frequent spelling (ties: the spelling met first
    in the file).

Nothing is changed in silence
    ``review_levels`` returns a *view*: a copy of the table with the merged spellings, the list
    of merges (``LevelMerge``, each with the spellings, their rows and a sentence), and the
    merges the user chose to keep apart. The uploaded table is never edited, and keeping a merge
    apart gives the spellings back exactly as written.

Near-duplicates are pointed out, not merged
    Levels that differ by more than the rule allows but look like one level ('observer' and
    'observ.', 'naturalistic' and 'naturalistc', 'self-report' and 'self report') are listed
    (``NearDuplicate``): the same letters and digits once punctuation and spaces are dropped;
    one an abbreviation (a prefix of at least three letters, written with a full stop) of the
    other; or one letter added, dropped or changed in levels of at least five letters.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from alliance_core.data.uploads.cells import count_of

# Beyond this many levels a column is free text, not a category: no near-duplicate search
# (it compares every pair).
_MAX_LEVELS_COMPARED = 200


def level_key(value: str) -> str:
    """The spelling-free form of a level: NFKC, case folded, runs of spaces made one."""
    text = unicodedata.normalize("NFKC", str(value))
    text = unicodedata.normalize("NFKC", text.casefold())
    return " ".join(text.split())


@dataclass(frozen=True)
class LevelMerge:
    """Spellings of one level in one column, read as ``shown``.

    ``spellings`` are (spelling as written, rows) pairs, the shown spelling first.
    """

    column: str
    key: str
    shown: str
    spellings: tuple[tuple[str, int], ...]

    @property
    def rows_changed(self) -> int:
        """Rows whose spelling differs from the shown one."""
        return sum(rows for spelling, rows in self.spellings if spelling != self.shown)

    @property
    def ident(self) -> tuple[str, str]:
        """Which merge this is, for keeping it apart: (column, level key)."""
        return self.column, self.key

    def describe(self) -> str:
        """ "In 'rater': 'Patient' and 'PATIENT' read as 'patient' (5 rows)." """
        others = [f"'{spelling}'" for spelling, _ in self.spellings if spelling != self.shown]
        listed = others[0] if len(others) == 1 else ", ".join(others[:-1]) + " and " + others[-1]
        return (
            f"In '{self.column}': {listed} read as '{self.shown}' "
            f"({count_of(self.rows_changed, 'row')})."
        )


@dataclass(frozen=True)
class NearDuplicate:
    """Two levels of a column that may be one, pointed out and left as they are."""

    column: str
    first: str
    second: str
    reason: str

    def describe(self) -> str:
        return (
            f"In '{self.column}': '{self.first}' and '{self.second}' may be the same level "
            f"({self.reason}); they are kept apart. Correct the sheet if they are one."
        )


@dataclass(frozen=True, eq=False)
class LevelReview:
    """The table as the analysis reads it, and every merge made or kept apart."""

    frame: pd.DataFrame
    merges: tuple[LevelMerge, ...]
    kept_apart: tuple[LevelMerge, ...]
    near_duplicates: tuple[NearDuplicate, ...]

    @property
    def all_merges(self) -> tuple[LevelMerge, ...]:
        """Merges made and merges kept apart, in column order (the Data page's choices)."""
        return tuple(
            sorted((*self.merges, *self.kept_apart), key=lambda m: (m.column, m.shown.casefold()))
        )


def review_levels(
    frame: pd.DataFrame,
    columns: Iterable[str],
    kept_apart: Iterable[tuple[str, str]] = (),
) -> LevelReview:
    """Merge the spellings of each level of the text columns ``columns`` (rule: module doc).

    ``kept_apart`` lists merges, as ``LevelMerge.ident``, whose spellings stay as written.
    ``frame`` is not changed; numeric columns and columns not in ``frame`` are left alone.
    """
    keep = {tuple(item) for item in kept_apart}
    view = frame
    merges: list[LevelMerge] = []
    apart: list[LevelMerge] = []
    near: list[NearDuplicate] = []
    for column in dict.fromkeys(columns):
        if column not in frame.columns or list(frame.columns).count(column) != 1:
            continue
        values = frame[column]
        if values.dtype.kind in "iufcbmM":  # numbers, booleans, dates: not levels
            continue
        found = column_merges(column, values.tolist())
        made = [merge for merge in found if merge.ident not in keep]
        apart.extend(merge for merge in found if merge.ident in keep)
        merges.extend(made)
        if made:
            if view is frame:
                view = frame.copy()
            renamed = {spelling: merge.shown for merge in made for spelling, _ in merge.spellings}
            view[column] = pd.Series(
                [
                    renamed.get(value, value) if isinstance(value, str) else value
                    for value in values
                ],
                index=frame.index,
                dtype=object,
            )
        near.extend(near_duplicates(column, view[column].tolist()))
    return LevelReview(view, tuple(merges), tuple(apart), tuple(near))


def column_merges(column: str, values: Sequence) -> list[LevelMerge]:
    """The merges of one column's text values (non-text cells are not levels)."""
    counts = Counter(value for value in values if isinstance(value, str))
    groups: dict[str, list[str]] = {}
    for spelling in counts:  # Counter keeps the order in which spellings were met
        groups.setdefault(level_key(spelling), []).append(spelling)
    merges = []
    for key, spellings in groups.items():
        if len(spellings) < 2:
            continue
        # max keeps the first of equal counts: the spelling met first in the file.
        shown = max(spellings, key=lambda s: counts[s])
        ordered = [shown, *(s for s in spellings if s != shown)]
        merges.append(LevelMerge(column, key, shown, tuple((s, counts[s]) for s in ordered)))
    return merges


def near_duplicates(column: str, values: Sequence) -> list[NearDuplicate]:
    """Pairs of distinct levels that look like one (rule: module doc)."""
    levels = list(dict.fromkeys(value for value in values if isinstance(value, str)))
    if len(levels) > _MAX_LEVELS_COMPARED:
        return []
    found = []
    for position, first in enumerate(levels):
        for second in levels[position + 1 :]:
            reason = _near_reason(first, second)
            if reason is not None:
                found.append(NearDuplicate(column, first, second, reason))
    return found


def _letters(value: str) -> str:
    return "".join(c for c in level_key(value) if c.isalnum())


def _near_reason(first: str, second: str) -> str | None:
    if level_key(first) == level_key(second):
        return None  # one level by the rule (kept apart by the user's choice)
    a, b = _letters(first), _letters(second)
    if not a or not b:
        return None
    if a == b:
        return "they differ only in punctuation or spaces"
    short, long_ = (first, second) if len(a) < len(b) else (second, first)
    short_letters, long_letters = _letters(short), _letters(long_)
    if (
        short.rstrip().endswith(".")
        and len(short_letters) >= 3
        and long_letters.startswith(short_letters)
    ):
        return f"'{short}' looks like an abbreviation of '{long_}'"
    if min(len(a), len(b)) >= 5 and _one_edit_apart(a, b):
        return "they differ in one letter"
    return None


def _one_edit_apart(a: str, b: str) -> bool:
    """One letter added, dropped or changed (Levenshtein distance 1)."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))
