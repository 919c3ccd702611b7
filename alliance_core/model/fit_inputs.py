"""What ``fit`` was given, checked before anything is estimated: the estimator and test for the
model, the level, the CHE sampling correlation rho, fixed variance components, and the rows that
are complete and finite in every used column (the rest are listed, never silently dropped).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from alliance_core.errors import AnalysisError
from alliance_core.model.components import SIGMA2_NAMES
from alliance_core.model.results import MODEL_THREE_LEVEL, MODEL_TWO_LEVEL

TWO_LEVEL_METHODS = ("EE", "FE", "DL", "HE", "PM", "SJ", "ML", "REML")


THREE_LEVEL_METHODS = ("ML", "REML")


TWO_LEVEL_TESTS = ("z", "knha", "t")


THREE_LEVEL_TESTS = ("z", "t")


# -- input handling -------------------------------------------------------------------------
def normalise_method(method: str) -> str:
    method = str(method).upper()
    return "EE" if method == "FE" else method


def check_settings(model: str, method: str, test: str, level: float) -> None:
    methods = TWO_LEVEL_METHODS if model == MODEL_TWO_LEVEL else THREE_LEVEL_METHODS
    if method not in methods:
        hint = (
            " (the three-level model is estimated by ML or REML)"
            if model == MODEL_THREE_LEVEL
            else ""
        )
        raise AnalysisError(
            f"Unknown estimator '{method}' for the {model} model{hint}; choose one of "
            f"{', '.join(m for m in methods if m != 'FE')}."
        )
    tests = TWO_LEVEL_TESTS if model == MODEL_TWO_LEVEL else THREE_LEVEL_TESTS
    if test not in tests:
        hint = " Use test='t' for t tests in the three-level model." if test == "knha" else ""
        raise AnalysisError(
            f"Unknown test '{test}' for the {model} model; choose one of {', '.join(tests)}.{hint}"
        )
    if not 0.0 < level < 1.0:
        raise AnalysisError(f"Confidence level {level} must lie between 0 and 1 (e.g. 0.95).")


def check_rho(rho, cluster: str | None) -> float | None:
    """The CHE sampling correlation: None, or a number in [0, 1) with a study column."""
    if rho is None:
        return None
    if cluster is None:
        raise AnalysisError(
            "A within-study sampling correlation (rho) needs a study column: set cluster to the "
            "study column (three-level model), or leave rho unset for the two-level model."
        )
    try:
        value = float(rho)
    except (TypeError, ValueError) as error:
        raise AnalysisError(f"rho must be a number in [0, 1), not {rho!r}.") from error
    if not 0.0 <= value < 1.0:
        raise AnalysisError(
            f"rho = {value:g} is outside [0, 1): the sampling correlation of a study's effect "
            "sizes is taken as 0 (independent) up to, but not including, 1 (e.g. 0.6)."
        )
    return value


def check_fix_sigma2(fix_sigma2, cluster: str | None) -> dict[str, float] | None:
    """Variance components held at given values: {"study": value} and/or {"es": value}."""
    if not fix_sigma2:
        return None
    if cluster is None:
        raise AnalysisError(
            "fix_sigma2 holds a three-level variance component; it needs a study column "
            "(cluster). For the two-level model leave it unset."
        )
    fixed = {}
    for name, value in dict(fix_sigma2).items():
        if name not in SIGMA2_NAMES:
            raise AnalysisError(f"fix_sigma2: unknown component '{name}'; use 'study' and/or 'es'.")
        try:
            number = float(value)
        except (TypeError, ValueError) as error:
            raise AnalysisError(
                f"fix_sigma2['{name}'] must be a non-negative number, not {value!r}."
            ) from error
        if not np.isfinite(number) or number < 0:
            raise AnalysisError(
                f"fix_sigma2['{name}'] = {value!r}: a variance must be a finite number >= 0."
            )
        fixed[name] = number
    return fixed


def complete_rows(data: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    columns = list(dict.fromkeys(columns))
    # Column arrays' own isna(): several times faster than DataFrame.isna() on text columns.
    missing = np.column_stack(
        [np.asarray(data[column].array.isna(), dtype=bool) for column in columns]
    )
    incomplete = missing.any(axis=1)
    reasons = [
        "missing " + ", ".join(f"'{c}'" for c, gone in zip(columns, row, strict=True) if gone)
        for row in missing[incomplete]
    ]
    dropped = pd.DataFrame({"reason": reasons}, index=data.index[incomplete])
    if not incomplete.any():
        return data, dropped
    return data.loc[~incomplete], dropped


def finite_numbers(frame: pd.DataFrame, column: str, what: str) -> np.ndarray:
    series = frame[column]
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=float)
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        row = frame.index[np.argmax(bad)]
        raise AnalysisError(
            f"Row {row}, column '{column}': '{frame.at[row, column]}' is not a finite number "
            f"({what})."
        )
    return values
