"""The Moderators page's marginal means travel: results file and report (one story).

Every marginal-mean row of the results file is the engine's ``res.marginal_means(column,
robust=...)`` number; the report's table shows the same means under the state's inference.
The R and Python scripts reproduce them in ``test_reproduce.py`` (one Rscript call for all
states): the last test here makes sure those states hold model-based and robust marginal means
with t and Satterthwaite df, so that proof is not empty.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alliance_core.handover.report import build_report
from alliance_core.handover.report_tables import r_text
from alliance_core.handover.results_moderators import (
    MARGINAL_SECTION,
    ROBUST_MARGINAL_SECTION,
    marginal_name,
)
from alliance_core.handover.results_table import results_frame
from tests.unit.reproduce_states import STATES, prepare

CHE_CR2 = next(s for s in STATES if s.name == "simulated-3L-CHE-rho06-CR2")
KNHA = next(s for s in STATES if s.name == "molloy2014-knha-ref")


@pytest.fixture(scope="module")
def che():
    return prepare(CHE_CR2)


def _rows(frame: pd.DataFrame, section: str) -> pd.DataFrame:
    return frame[frame["section"] == section].set_index("name")


def test_marginal_rows_are_the_engines_means(che):
    res = che.run.result
    frame = results_frame(res, True, che.robust)
    for section, robust in ((MARGINAL_SECTION, None), (ROBUST_MARGINAL_SECTION, che.robust)):
        rows = _rows(frame, section)
        means = res.marginal_means("alliance_rater", robust=robust)
        assert len(rows) == len(means.table) == 4
        for level, row in means.table.iterrows():
            got = rows.loc[marginal_name("alliance_rater", level)]
            for column in ("estimate", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
                assert got[column] == row[column], (section, level, column)
            if robust is None:
                assert pd.isna(got["df"])  # z tests: infinite df, left empty
            else:
                assert got["df"] == row["df"] and np.isfinite(row["df"])


def test_the_report_table_shows_the_pages_means(che):
    report = build_report(
        che.run, che.run, che.provenance, on_r_scale=True, figures={}, robust=che.robust
    )
    table = next(t for t in report.tables if t.title == "Marginal means by alliance_rater")
    means = che.run.result.marginal_means("alliance_rater", robust=che.robust)  # the page's
    assert [row[0] for row in table.rows] == [str(level) for level in means.table.index]
    for row, (_, mean) in zip(table.rows, means.table.iterrows(), strict=True):
        assert row[1] == r_text(mean["r"])
        assert row[2] == f"[{r_text(mean['r_ci_lb'])}, {r_text(mean['r_ci_ub'])}]"
    assert "CR2" in table.note


def test_the_reproduced_states_hold_every_kind_of_marginal_mean(che):
    robust = results_frame(che.run.result, True, che.robust)
    assert (robust["section"] == ROBUST_MARGINAL_SECTION).sum() == 4
    knha = prepare(KNHA)
    frame = results_frame(knha.run.result, knha.on_r_scale, knha.robust)
    rows = _rows(frame, MARGINAL_SECTION)
    assert len(rows) >= 2
    assert (rows["df"] == knha.run.result.ddf).all()  # t tests: k - p df
