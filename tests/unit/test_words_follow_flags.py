"""Words follow flags: a test the state flags is never called significant or non-significant,
in the pages' readings or in the report, and flagged rows are marked in the report's tables.

The flagged cases are read off the data (a level observed in one study; fewer than three
studies) or off the definition of a flag (a robust df below 4), see test_analysis_state.py.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.analyses.bias_tests import bias_tests_of
from alliance_core.data.mapping import ColumnMapping
from alliance_core.formatting import format_number
from alliance_core.handover.provenance import Provenance
from alliance_core.handover.report import state_report
from alliance_core.wording import reading
from tests.tools import bundled_provenance

VERDICT = re.compile(r"\b(not )?significant(ly)?\b|do not support|do not show a reliable")


def _verdicts(text: str) -> list[str]:
    return VERDICT.findall(text)


@pytest.fixture(scope="module")
def flagged_state():
    info = ac.datasets.dataset_info("assink2016")
    settings = ac.AnalysisSettings(
        dataset="assink2016", model="three-level", moderators=("deltype",), inference="CR2"
    )
    return ac.analysis_state(ac.load_dataset("assink2016"), info.mapping, settings)


def _assink_provenance(run) -> Provenance:
    return bundled_provenance(run, "assink2016")


def test_a_flagged_moderator_test_gets_no_verdict(flagged_state):
    run, flags = flagged_state.moderated, flagged_state.moderated_flags
    caution = flags.omnibus_caution()
    assert caution  # HTZ df2 below 4 and the reference level from one study
    text = reading.moderator_test(run.result, omnibus=run.omnibus, caution=caution)
    assert "cannot be trusted" in text and caution in text
    assert not _verdicts(text)
    # Without the caution the same test would be given a verdict: the caution is what removes it.
    assert _verdicts(reading.moderator_test(run.result, omnibus=run.omnibus))


def test_a_flagged_ptr_slope_gets_no_verdict():
    # Four studies under CR2: every robust test is flagged (fewer than 10 clusters).
    info = ac.datasets.dataset_info(ac.DEFAULT_DATASET)
    rows = ac.load_dataset(ac.DEFAULT_DATASET)
    rows = rows[rows["study"].isin(rows["study"].unique()[:4])]
    settings = ac.AnalysisSettings(moderators=("PTR",), inference="CR2")
    state = ac.analysis_state(rows, info.mapping, settings)
    caution = state.moderated_flags.coefficient_caution("log_PTR")
    assert "only 4 studies" in caution
    text = reading.ptr_effect(
        state.moderated.result,
        "log_PTR",
        coefficients=state.moderated.inference_table,
        caution=caution,
    )
    assert "cannot be trusted" in text and not _verdicts(text)


def test_heterogeneity_is_not_read_from_two_studies():
    frame = pd.DataFrame(
        {"study": ["A", "B"], "yi": [0.1, 0.5], "vi": [0.01, 0.01]},
    )
    mapping = ColumnMapping(study="study", yi="yi", vi="vi")
    state = ac.analysis_state(
        frame, mapping, ac.AnalysisSettings(dataset="upload", model="two-level", moderators=())
    )
    caution = state.pooled_flags.heterogeneity_caution()
    text = reading.heterogeneity(state.pooled.result, caution=caution)
    assert "only 2 studies" in text
    assert "is true heterogeneity" not in text and "differ more than" not in text


def test_the_cr2_report_holds_no_model_based_test_and_no_flagged_verdict(flagged_state):
    run = flagged_state.model
    provenance = _assink_provenance(run)
    report = state_report(flagged_state, provenance)
    methods = " ".join(report.methods)
    results = " ".join(report.results)
    assert "z tests" not in methods and "CR2" in methods and "HTZ" in methods
    assert "QM(" not in results and "(HTZ)" in results
    assert "cannot be trusted" in results
    # The moderator sentence is the flagged one: no verdict in it.
    moderator_sentence = next(s for s in report.results if "test of all moderators" in s)
    assert not re.search(r"\bwere( not)? significant", moderator_sentence)
    # Only the robust coefficient table; flagged rows carry the dagger and the note says why.
    titles = [table.title for table in report.tables]
    assert "Meta-regression coefficients" not in titles
    robust = next(t for t in report.tables if "cluster-robust" in t.title)
    marked = [row[0] for row in robust.rows if row[0].endswith("†")]
    assert (
        len(marked)
        == len(
            flagged_state.moderated_flags.flagged_terms(
                flagged_state.moderated.inference_table.index
            )
        )
        > 0
    )
    assert "cannot be trusted" in robust.note
    html = report.to_html()
    assert "z tests" not in html


@pytest.mark.parametrize("filters", [{}, {"deltype": ("overt",)}], ids=["all", "three-studies"])
def test_the_reports_bias_tests_are_the_states_under_cr2(filters):
    """Under CR2 the report's Egger's test is the state's cluster-robust one (the Publication
    bias page's), with its own Satterthwaite df; a cautioned test (few studies) gets no verdict."""
    info = ac.datasets.dataset_info("assink2016")
    settings = ac.AnalysisSettings(
        dataset="assink2016", model="three-level", moderators=(), inference="CR2", filters=filters
    )
    state = ac.analysis_state(ac.load_dataset("assink2016"), info.mapping, settings)
    run = state.model
    provenance = _assink_provenance(run)
    tests = bias_tests_of(state)
    assert tests.egger.inference == "CR2"
    assert bool(tests.egger.caution) == bool(filters)
    results = " ".join(state_report(state, provenance).results)
    egger = next(s for s in results.split(". ") if "Egger's regression test" in s)
    assert "cluster-robust, CR2" in egger
    assert f"t({format_number(tests.egger.ddf, 1)})" in egger
    if filters:
        assert "cannot be read here" in egger and "indicate" not in egger
    else:
        said = "indicated" if tests.egger.pval < 0.05 else "did not indicate"
        assert f"{said} funnel asymmetry" in egger
