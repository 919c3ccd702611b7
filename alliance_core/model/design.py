"""Moderators to a model matrix, coded the way R codes them for metafor.

Numeric columns enter as they are. Text, categorical and boolean columns are treatment-coded
(one dummy per non-reference level), with the alphabetically first level as the reference unless
the caller names one, so that coefficient labels and estimates line up with
``rma(yi, vi, mods = ~ ptr + rater)`` row for row: ``intrcpt``, ``ptr``, ``raterobserver``, ...

An interaction is named ``"a:b"`` beside its main effects (``["ptr", "rater", "ptr:rater"]``)
and coded as R's ``model.matrix`` codes ``~ ptr * rater``: main effects first in the order
listed, then interactions by degree; each interaction column is the product of one column of
each part, the first part varying fastest, labelled ``ptr:raterobserver``; the parts of a label
follow the order in which their moderators are listed.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alliance_core.errors import AnalysisError

INTERCEPT = "intrcpt"
INTERACTION = ":"


def level_order(levels) -> list[str]:
    """Alphabetical order of category labels, ignoring case (lower case first on ties).

    R's ``factor()`` sorts levels by the collation of its locale, which differs between
    machines; this fixed rule is the one the project's metafor reference scripts use too.
    """
    return sorted({str(level) for level in levels}, key=lambda s: (s.casefold(), s.swapcase()))


def is_categorical(series: pd.Series) -> bool:
    """Text, categorical and boolean columns are categorical; numbers are numeric."""
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def _codes_and_labels(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes per row (-1 where missing) and the text label of each code.

    Booleans become R's 'TRUE'/'FALSE' so that labels read like metafor's (``pdTRUE``).
    Factorising first keeps this fast for long columns: only the distinct values are turned
    into text.
    """
    codes, uniques = series.array.factorize(use_na_sentinel=True)
    if pd.api.types.is_bool_dtype(series):
        labels = ["TRUE" if value else "FALSE" for value in uniques]
    else:
        labels = [str(value) for value in uniques]
    return np.asarray(codes), labels


def level_labels(series: pd.Series) -> pd.Series:
    """The level of each row as the model names it (booleans as 'TRUE'/'FALSE'; missing: None)."""
    codes, labels = _codes_and_labels(series)
    return pd.Series(
        [labels[code] if code >= 0 else None for code in codes], index=series.index, dtype=object
    )


@dataclass(frozen=True)
class ModeratorTerm:
    """One moderator column and the coefficient columns it becomes."""

    column: str
    kind: str  # "numeric" or "categorical"
    levels: tuple[str, ...] = ()  # categorical: reference first, then the others in order
    mean: float | None = None  # numeric: mean over the fitted rows (for "typical" predictions)

    @property
    def reference(self) -> str | None:
        return self.levels[0] if self.kind == "categorical" else None

    @property
    def labels(self) -> tuple[str, ...]:
        if self.kind == "numeric":
            return (self.column,)
        return tuple(f"{self.column}{level}" for level in self.levels[1:])

    def columns_for(self, values: pd.Series, what: str) -> np.ndarray:
        """This term's columns of the model matrix for the given values."""
        if self.kind == "numeric":
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            if np.isnan(numbers).any():
                bad = values[np.isnan(numbers)].iloc[0]
                raise AnalysisError(
                    f"{what}: moderator '{self.column}' needs a number, got '{bad}'."
                )
            return numbers[:, None]
        codes, labels = _codes_and_labels(values)
        return self.dummies(codes, labels, values, what)

    def dummies(
        self, codes: np.ndarray, labels: list[str], values: pd.Series, what: str
    ) -> np.ndarray:
        """Treatment-coded columns from factorised values (see ``_codes_and_labels``)."""
        position = {level: i for i, level in enumerate(self.levels)}
        level_of_code = np.array([position.get(label, -1) for label in labels] + [-1])
        # codes of -1 (missing) index the trailing -1 entry.
        rows = level_of_code[codes]
        if (rows < 0).any():
            raw = values.iloc[int(np.argmax(rows < 0))]
            shown = "a missing value" if pd.isna(raw) else f"'{raw}'"
            raise AnalysisError(
                f"{what}: moderator '{self.column}' has level {shown}, which the model does not "
                f"know (levels: {', '.join(self.levels)})."
            )
        # One dummy per non-reference level: column j is 1 where the row's level is j + 1.
        return (rows[:, None] == np.arange(1, len(self.levels))[None, :]).astype(float)


@dataclass(frozen=True)
class InteractionTerm:
    """An interaction of two or more moderators (R's ``a:b``): the products of their columns."""

    parts: tuple[ModeratorTerm, ...]
    kind: str = "interaction"
    levels: tuple[str, ...] = ()
    mean: float | None = None

    @property
    def column(self) -> str:
        """The term's label, R's ``a:b`` (parts in the order the moderators are listed)."""
        return INTERACTION.join(part.column for part in self.parts)

    @property
    def reference(self) -> None:
        return None

    @property
    def labels(self) -> tuple[str, ...]:
        # model.matrix order: the first part's columns vary fastest.
        combos = itertools.product(*(part.labels for part in reversed(self.parts)))
        return tuple(INTERACTION.join(reversed(combo)) for combo in combos)

    def columns_from(self, blocks: Mapping[str, np.ndarray]) -> np.ndarray:
        """This term's columns from the columns of its parts (``blocks[part.column]``)."""
        out = np.ones((next(iter(blocks.values())).shape[0], 1))
        for part in self.parts:
            block = blocks[part.column]
            # first part fastest: column j * m + i = (existing column i) x (this part's column j)
            out = (block[:, :, None] * out[:, None, :]).reshape(out.shape[0], -1)
        return out


@dataclass(frozen=True)
class ModelDesign:
    """The moderators of a model and the coefficient labels they produce (intercept first)."""

    terms: tuple[ModeratorTerm | InteractionTerm, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return (INTERCEPT, *(label for term in self.terms for label in term.labels))

    @property
    def moderators(self) -> tuple[str, ...]:
        """The data columns the model reads (main effects; interactions are built from them)."""
        return tuple(term.column for term in self.terms if term.kind != "interaction")

    @property
    def term_labels(self) -> tuple[str, ...]:
        """Every term of the model, interactions included (R's ``term.labels``)."""
        return tuple(term.column for term in self.terms)

    @property
    def interactions(self) -> tuple[InteractionTerm, ...]:
        return tuple(term for term in self.terms if term.kind == "interaction")

    def term(self, column: str) -> ModeratorTerm | InteractionTerm:
        for term in self.terms:
            if term.column == column or (
                term.kind == "interaction" and _same_interaction(term, column)
            ):
                return term
        raise AnalysisError(f"'{column}' is not a moderator of this model.")

    def matrix(self, frame: pd.DataFrame, what: str = "Data") -> np.ndarray:
        """Model matrix X (intercept column first) for the rows of ``frame``."""
        blocks = [np.ones((len(frame), 1))]
        by_column: dict[str, np.ndarray] = {}
        for term in self.terms:
            if term.kind == "interaction":
                blocks.append(term.columns_from(by_column))
                continue
            if term.column not in frame.columns:
                raise AnalysisError(f"{what}: moderator column '{term.column}' is missing.")
            by_column[term.column] = term.columns_for(frame[term.column], what)
            blocks.append(by_column[term.column])
        return np.hstack(blocks)

    def typical_values(self) -> dict[str, object]:
        """Reference level of each categorical moderator and mean of each numeric one."""
        return {
            term.column: term.mean if term.kind == "numeric" else term.reference
            for term in self.terms
            if term.kind != "interaction"
        }

    def coefficient_indices(self, terms: Sequence[str]) -> list[int]:
        """Positions of coefficients named either by label (``raterobserver``) or by moderator
        column (``rater``: all of its dummies), in model order."""
        names = self.names
        chosen: set[int] = set()
        for term in terms:
            if term in names:
                chosen.add(names.index(term))
                continue
            matches = [
                i
                for i, label in enumerate(names)
                for t in self.terms
                if (t.column == term or (t.kind == "interaction" and _same_interaction(t, term)))
                and label in t.labels
            ]
            if not matches:
                raise AnalysisError(
                    f"'{term}' is neither a coefficient ({', '.join(names)}) nor a moderator of this model."
                )
            chosen.update(matches)
        return sorted(chosen)


def _same_interaction(term: InteractionTerm, name: str) -> bool:
    """``b:a`` names the same interaction as ``a:b``."""
    return INTERACTION in name and sorted(name.split(INTERACTION)) == sorted(
        part.column for part in term.parts
    )


def split_moderators(
    moderators: Sequence[str], columns: Sequence[str]
) -> tuple[list[str], list[tuple[str, ...]]]:
    """Main-effect columns and interactions (tuples of columns) of a moderator list.

    A name with ``:`` is an interaction unless the data have a column of exactly that name.
    Every part of an interaction must be listed as a moderator itself, and so must every
    lower-order interaction of its parts (R's ``a * b``, whose coding this follows).
    """
    columns = set(columns)
    mains = [m for m in moderators if INTERACTION not in m or m in columns]
    interactions = []
    for name in moderators:
        if name in mains:
            continue
        parts = tuple(part.strip() for part in name.split(INTERACTION))
        if len(set(parts)) != len(parts) or "" in parts:
            raise AnalysisError(
                f"Interaction '{name}' must name two or more different moderators, e.g. "
                "'log_ptr:alliance_rater'."
            )
        missing = [part for part in parts if part not in mains]
        if missing:
            raise AnalysisError(
                f"Interaction '{name}': list '{missing[0]}' as a moderator too (an interaction "
                "is read beside its main effects, as R's a * b)."
            )
        # parts in the order their moderators are listed, as R's term labels
        parts = tuple(sorted(parts, key=mains.index))
        if parts in interactions:
            raise AnalysisError(f"Interaction '{name}' is listed twice; list each term once.")
        interactions.append(parts)
    known = set(interactions)
    for parts in interactions:
        for size in range(2, len(parts)):
            for lower in itertools.combinations(parts, size):
                if lower not in known:
                    raise AnalysisError(
                        f"Interaction '{INTERACTION.join(parts)}' needs its lower-order term "
                        f"'{INTERACTION.join(lower)}' listed too (as R's a * b * c)."
                    )
    # R orders terms by degree, then as listed.
    interactions.sort(key=len)
    return mains, interactions


def build_design(
    data: pd.DataFrame,
    moderators: Sequence[str] | None,
    reference: Mapping[str, object] | None = None,
) -> ModelDesign:
    """Read the coding of each moderator off the (already complete) rows of ``data``."""
    return build_design_matrix(data, moderators, reference)[0]


def build_design_matrix(
    data: pd.DataFrame,
    moderators: Sequence[str] | None,
    reference: Mapping[str, object] | None = None,
) -> tuple[ModelDesign, np.ndarray]:
    """The coding of each moderator and the model matrix of ``data``, in one pass per column."""
    reference = dict(reference or {})
    listed = list(moderators or [])
    if len(set(listed)) != len(listed):
        raise AnalysisError("A moderator is listed twice; list each column once.")
    moderators, interactions = split_moderators(listed, data.columns)
    unused = sorted(set(reference) - set(moderators))
    if unused:
        raise AnalysisError(
            f"A reference level was given for '{unused[0]}', which is not among the moderators."
        )
    terms = []
    blocks = [np.ones((len(data), 1))]
    for column in moderators:
        if column not in data.columns:
            raise AnalysisError(f"Moderator column '{column}' is not in the data.")
        series = data[column]
        if is_categorical(series):
            codes, labels = _codes_and_labels(series)
            term = _categorical_term(column, labels, reference.get(column))
            blocks.append(term.dummies(codes, labels, series, "Data"))
        else:
            if column in reference:
                raise AnalysisError(
                    f"Moderator '{column}' is numeric, so it has no reference level."
                )
            values = series.to_numpy(dtype=float)
            _check_finite(column, values, data.index)
            if values.size and values.min() == values.max():
                shown = "log PTR" if column == "log_PTR" else column  # the computed column
                raise AnalysisError(
                    f"Moderator '{shown}' has the same value ({values[0]:g}) in every "
                    "analysed row, so its effect cannot be estimated. Remove it from the model."
                )
            term = ModeratorTerm(column=column, kind="numeric", mean=float(values.mean()))
            blocks.append(values[:, None])
        terms.append(term)
    by_column = {term.column: term for term in terms}
    block_of = {term.column: block for term, block in zip(terms, blocks[1:], strict=True)}
    for parts in interactions:
        term = InteractionTerm(parts=tuple(by_column[part] for part in parts))
        terms.append(term)
        blocks.append(term.columns_from(block_of))
    return ModelDesign(terms=tuple(terms)), np.hstack(blocks)


def _check_finite(column: str, values: np.ndarray, rows: pd.Index) -> None:
    """A numeric moderator needs a finite value in every row (an infinite one, e.g. log 0,
    has no fit; it also made the I² line divide by zero)."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    labels = [str(label) for label in rows[bad]]
    shown = ", ".join(labels[:10]) + (f" and {len(labels) - 10} more" if len(labels) > 10 else "")
    raise AnalysisError(
        f"Moderator '{column}' is not a finite number in row(s) {shown}; a meta-regression "
        "needs a finite value in every row it uses."
    )


def _categorical_term(column: str, labels: list[str], reference) -> ModeratorTerm:
    levels = level_order(labels)
    if len(levels) < 2:
        only = levels[0] if levels else "nothing"
        raise AnalysisError(
            f"Moderator '{column}' has a single level ('{only}') in the analysed rows, so it cannot "
            "explain differences between effect sizes. Remove it or change the filter."
        )
    if reference is not None:
        reference = (
            "TRUE" if reference is True else "FALSE" if reference is False else str(reference)
        )
        if reference not in levels:
            raise AnalysisError(
                f"Reference level '{reference}' is not a level of '{column}' "
                f"(levels: {', '.join(levels)})."
            )
        levels.remove(reference)
        levels.insert(0, reference)
    return ModeratorTerm(column=column, kind="categorical", levels=tuple(levels))


def _nearly_singular(Xs: np.ndarray) -> bool:
    eigenvalues = np.linalg.eigvalsh(Xs.T @ Xs)
    return bool(eigenvalues[0] <= 1e-10 * eigenvalues[-1])


def check_full_rank(X: np.ndarray, names: Sequence[str], moderator_of: Mapping[str, str]) -> None:
    """Raise if a coefficient is (nearly) a linear combination of the ones before it, naming it.

    Like metafor, the test is on the eigenvalues of the cross-product X'X (columns scaled to unit
    length so that a moderator measured in large units is not mistaken for a collinear one).
    """
    scale = np.linalg.norm(X, axis=0)
    scale[scale == 0] = 1.0
    Xs = X / scale
    if not _nearly_singular(Xs):
        return
    for j in range(1, Xs.shape[1] + 1):
        if _nearly_singular(Xs[:, :j]):
            label = names[j - 1]
            column = moderator_of.get(label, label)
            raise AnalysisError(
                f"Moderator '{column}' (coefficient '{label}') is collinear with the intercept or "
                "the moderators before it, so its effect cannot be separated from theirs. "
                "Remove one of them."
            )


def prediction_frame(
    design: ModelDesign,
    newdata: pd.DataFrame | Mapping | Sequence[Mapping] | None,
    fill_typical: bool = True,
) -> pd.DataFrame:
    """Moderator values of the rows to predict (``predict``'s ``newdata`` / ``newmods``): a
    frame, a mapping of columns, or a list of rows; None gives one row. Moderators left out are
    held at their mean (numeric) or reference level (categorical) when ``fill_typical``."""
    if newdata is None:
        frame = pd.DataFrame(index=[0])
    elif isinstance(newdata, pd.DataFrame):
        frame = newdata.copy()
    elif isinstance(newdata, Mapping):
        values = {key: (list(v) if np.ndim(v) else [v]) for key, v in newdata.items()}
        frame = pd.DataFrame(values)
    else:
        frame = pd.DataFrame(list(newdata))
    typical = design.typical_values()
    for column in design.moderators:
        if column not in frame.columns:
            if not fill_typical:
                raise AnalysisError(f"Prediction: a value for moderator '{column}' is needed.")
            frame[column] = typical[column]
    return frame
