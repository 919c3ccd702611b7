"""The Moderators page's wild bootstrap result travels with the downloads: once a result is
in the page's store for the current state, the results file holds its rows (the numbers of
the result itself; clicking the run button inside the section's fragment does not work in
AppTest, so the test puts a result in the store as the button does), and so does the report."""

from __future__ import annotations

import io

import pandas as pd

import alliance_core as ac
from alliance_core.data.datasets import DEFAULT_DATASET
from alliance_core.formatting import format_number, format_p
from alliance_core.handover.results_wild import WILD_SECTION, f_name, p_name, replicates_name
from pages._ui import loading, session
from pages._ui.handover_extras import WILD_KEY
from tests.app.conftest import assert_ran_cleanly, run_page

LABEL = "alliance_rater"


def test_the_results_file_carries_the_states_wild_bootstrap(downloads):
    at = run_page("pages/moderators.py")
    at.multiselect(key=session.MODERATORS).select(LABEL).run()
    at.radio(key=session.INFERENCE).set_value("CR2").run()
    assert_ran_cleanly(at)
    frame = pd.read_csv(io.BytesIO(downloads.bytes(at, "results")), comment="#")
    assert WILD_SECTION not in set(frame["section"])

    settings = ac.AnalysisSettings.from_json(downloads.bytes(at, "settings"))
    info = ac.datasets.dataset_info(DEFAULT_DATASET)
    state = ac.analysis_state(ac.load_dataset(DEFAULT_DATASET), info.mapping, settings)
    run = state.model
    cwb = run.result.wild_bootstrap([LABEL], R=99, seed=1, type="CR2", cluster=run.robust.cluster)
    key = (f"bundled:{DEFAULT_DATASET}", loading.analysis_key(settings), LABEL)
    at.session_state[WILD_KEY] = {key: cwb}
    at.selectbox(key="cwb:test").set_value(LABEL).run()
    assert_ran_cleanly(at)
    assert any(m.value.startswith("Wild bootstrap of alliance\\_rater: F =") for m in at.markdown)
    frame = pd.read_csv(io.BytesIO(downloads.bytes(at, "results")), comment="#")
    rows = frame[frame["section"] == WILD_SECTION].set_index("name")
    assert len(rows) == 3
    assert rows.loc[f_name(LABEL, cwb), "statistic"] == cwb.statistic
    assert rows.loc[p_name(LABEL, cwb), "pval"] == cwb.pval
    assert rows.loc[replicates_name(LABEL), "estimate"] == cwb.R
    # The report is made on a click, outside the page's run: it carries the result read when
    # the page ran (its Methods reference and the test's sentence with the result's numbers).
    html = downloads.bytes(at, "report-html").decode("utf-8")
    assert "Joshi, M., Pustejovsky, J. E., &amp; Beretvas, S. N. (2022)" in html
    assert (
        f"Cluster wild bootstrap test of {LABEL}: F = {format_number(cwb.statistic, 2)}, "
        f"{format_p(cwb.pval)} (99 replicates" in html
    )
