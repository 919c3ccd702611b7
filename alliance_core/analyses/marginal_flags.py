"""Flags of what a page computes from a fitted model beyond its coefficients: the marginal
mean of each level of a categorical moderator and the PTR readout's change in r.

Both are linear combinations of the coefficients with a test of their own (under CR2 on their
own Satterthwaite df), so ``ModelFlags`` has no entry for them. Their cautions are worded by
``ModelFlags.coefficient_caution`` itself, on a copy of the flags holding the combination's
own df and single-study level: a mean or a change is never flagged in other words, or for
other reasons, than a coefficient would be.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from alliance_core.analyses.run import AnalysisRun
from alliance_core.analyses.state import ModelFlags
from alliance_core.model.design import INTERACTION, INTERCEPT
from alliance_core.model.marginal import MarginalMeans
from alliance_core.model.robust import MIN_RELIABLE_DF


def mean_cautions(run: AnalysisRun, flags: ModelFlags, means: MarginalMeans) -> dict[str, str]:
    """Level → why its marginal mean's test and interval cannot be trusted (levels that can
    be read are left out): under CR2 fewer than 10 studies or its own Satterthwaite df below
    4, and, under any inference, a level observed in a single study (its mean is that study's).

    A mean is not a moderator test, so the model-based few-studies rule of moderator tests
    does not apply (as for the intercept)."""
    studies = _studies_per_level(run, means.focal)
    out = {}
    for level, row in means.table.iterrows():
        df = float(row["df"])
        small = run.robust is not None and np.isfinite(df) and not df >= MIN_RELIABLE_DF
        single = studies.get(str(level)) == 1
        own = replace(
            flags,
            small_df=((INTERCEPT, df),) if small else (),
            one_study_levels=((INTERCEPT, means.focal, str(level)),) if single else (),
        )
        caution = own.coefficient_caution(INTERCEPT)
        if caution:
            out[str(level)] = caution
    return out


def change_caution(run: AnalysisRun, flags: ModelFlags, readout) -> str | None:
    """Why the PTR readout's change (a ``figures.PTRSlopeReadout``, a layer above this one)
    cannot be trusted (None: it can be read): the reasons of
    every coefficient the change rests on (the PTR slope and, for a profile at a level of a
    moderator PTR interacts with, that level's interaction coefficient), with the change's own
    robust df in place of theirs (under CR2 it is tested on that df alone)."""
    ptr = run.ptr_column
    terms = [ptr]
    for term in run.result.design.interactions:
        if ptr not in [part.column for part in term.parts]:
            continue
        for part in term.parts:
            if part.kind != "categorical" or part.column not in readout.values:
                continue
            chosen = str(readout.values[part.column])
            for level, label in zip(part.levels[1:], part.labels, strict=True):
                if str(level) == chosen:
                    terms += [t for t in term.labels if label in t.split(INTERACTION)]
    df = readout.df
    small = run.robust is not None and df is not None and not df >= MIN_RELIABLE_DF
    own = replace(flags, small_df=((ptr, float(df)),) if small else ())
    reasons = []
    for term in terms:
        caution = own.coefficient_caution(term)
        if caution:
            reasons += caution.split("; ")
    return "; ".join(dict.fromkeys(reasons)) or None


def _studies_per_level(run: AnalysisRun, column: str) -> dict[str, int]:
    """Level of ``column`` → the number of studies its analysed rows come from (each row its
    own study when the data name no study column, as in ``model_flags``)."""
    rows = run.result.data
    if column not in rows.columns:
        return {}
    study = run.mapping.study if run.mapping is not None else None
    if study and study in rows.columns:
        study_of = rows[study]
    else:
        study_of = pd.Series(np.arange(len(rows)), index=rows.index)
    values = rows[column].astype("string")
    return {str(level): int(n) for level, n in study_of.groupby(values).nunique().items()}
