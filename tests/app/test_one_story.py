"""One state, one story: the same headline numbers on the page, in the report and in the
results file, for a matrix of dashboard states; and no sentence calls a flagged test
significant or non-significant.

The page is read through AppTest (the Overview, which reports the pooled model and the
moderator test); the state the page ran is read back from its own share link and rebuilt with
``ac.analysis_state``; the report and the results file are rendered from that state as the
download buttons render them. Numbers are compared at the precision each surface prints (two
decimals on the page, APA style in the report) and exactly between the state and the CSV.
The reproduction scripts of both models are run in tests/unit/test_reproduce_two_models.py.
"""

from __future__ import annotations

import functools
import io
import re
import urllib.parse

import docx
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, load_dataset
from alliance_core.data.mapping import ColumnMapping
from alliance_core.handover.provenance import Provenance
from alliance_core.handover.report import state_report
from pages._ui import session, tables
from pages._ui.state import UPLOAD_DATASET, default_settings
from tests.app.conftest import exception_messages, new_app, unescaped
from tests.app.one_story_states import MODERATED_STATES, ONE_STUDY_LEVEL, STATES
from tests.tools import bundled_provenance

VERDICT = re.compile(r"\bsignificant(ly)?\b")


def _share_query(at) -> dict[str, list[str]]:
    links = [t.value for t in at.sidebar.text if "?" in t.value]
    assert len(links) == 1
    return urllib.parse.parse_qs(links[0].split("?", 1)[1])


def _settings(query: dict[str, list[str]]) -> AnalysisSettings:
    name = query.get("ds", [DEFAULT_DATASET])[-1]
    return AnalysisSettings.from_query(
        query, default=default_settings(name, dataset_info(name).mapping)
    )


@functools.cache
def _shown(name: str):
    """The Overview of one state, run once per test session, and the state its link names."""
    at = new_app()
    at.query_params.update(STATES[name])
    at.run()
    assert not at.exception, exception_messages(at)
    settings = _settings(_share_query(at))
    info = dataset_info(settings.dataset)
    state = ac.analysis_state(load_dataset(settings.dataset), info.mapping, settings)
    return name, at, state, info


@pytest.fixture(params=sorted(STATES))
def shown(request):
    return _shown(request.param)


@pytest.fixture(params=MODERATED_STATES)
def moderated(request):
    return _shown(request.param)


def _metric(at, prefix: str) -> str:
    found = [m.value for m in at.metric if m.label.startswith(prefix)]
    assert len(found) == 1, [m.label for m in at.metric]
    return found[0]


def _numbers(text: str) -> list[float]:
    return [float(x.replace("\u2212", "-")) for x in re.findall(r"[\u2212-]?\d*\.\d+", text)]


def _provenance(state, info) -> Provenance:
    run = state.model if state.moderated is not None else state.pooled
    return bundled_provenance(run, info.name)


def test_page_report_and_results_file_tell_one_story(shown):
    name, at, state, info = shown
    pred = state.pooled_prediction()
    # Page: the pooled estimate, CI and PI under the state's inference.
    assert _metric(at, "Pooled") == tables.fmt_num(pred["pred"])
    assert _metric(at, "95% confidence") == tables.fmt_interval(pred["ci_lb"], pred["ci_ub"])
    if pd.notna(pred["pi_lb"]):
        assert _metric(at, "95% prediction") == tables.fmt_interval(pred["pi_lb"], pred["pi_ub"])

    # Results file: the row the page shows (under CR2 the labelled robust prediction).
    run = state.model if state.moderated is not None else state.pooled
    csv = tables.results_csv(
        run, state.on_r_scale, None, pooled=state.pooled, robust=run.robust
    ).decode()
    frame = pd.read_csv(io.StringIO(csv), comment="#")
    section = "robust prediction" if state.pooled.robust is not None else "prediction"
    row = frame[frame["section"] == section].iloc[0]  # the pooled model's rows come first
    for column, key in (("estimate", "pred"), ("ci_lb", "ci_lb"), ("ci_ub", "ci_ub")):
        assert row[column] == pytest.approx(pred[key], rel=1e-12, abs=1e-15)
    assert tables.fmt_num(row["estimate"]) == _metric(at, "Pooled")

    # Report: the pooled sentence has the page's estimate and interval (same rounding).
    report = state_report(state, _provenance(state, info))
    pooled_sentence = report.results[0]
    shown_numbers = _numbers(_metric(at, "Pooled")) + _numbers(_metric(at, "95% confidence"))
    reported = _numbers(pooled_sentence.split("prediction interval")[0])[:3]
    assert reported == pytest.approx(shown_numbers, abs=0.0051), (name, pooled_sentence)
    if state.pooled.robust is not None:
        methods = " ".join(report.methods)
        assert "z tests" not in methods and "HTZ" in methods
    # The Word report says the same as the HTML one.
    document = docx.Document(io.BytesIO(report.to_docx()))
    paragraphs = [p.text for p in document.paragraphs]
    assert any(p.startswith(pooled_sentence[:60]) for p in paragraphs)
    assert _numbers(next(p for p in paragraphs if p.startswith(pooled_sentence[:60])))[:3] == (
        pytest.approx(reported)
    )


def test_the_moderator_test_reads_the_same_everywhere(moderated):
    name, at, state, info = moderated
    assert state.moderated is not None, f"{name} was meant to have a moderator model"
    statistic, _, _, _ = state.moderated.omnibus
    texts = [unescaped(m.value) for m in at.markdown]  # readings are escaped: as read
    page = [text for text in texts if "moderators" in text and "p " in text]
    sentence = next(text for text in page if f"{statistic:.2f}" in text)
    report = " ".join(state_report(state, _provenance(state, info)).results)
    assert f"{statistic:.2f}" in report
    caution = state.moderated_flags.omnibus_caution()
    report_sentence = next(s for s in re.split(r"(?<=\.) ", report) if f"{statistic:.2f}" in s)
    if caution:
        assert "cannot be trusted" in sentence and not VERDICT.search(sentence)
        assert "cannot be trusted" in report_sentence and not VERDICT.search(report_sentence)
    else:
        assert VERDICT.search(sentence) and VERDICT.search(report_sentence)


def test_the_flagged_state_is_flagged():
    # The matrix must hold a flagged case, or the test above could never see one.
    info = dataset_info("assink2016")
    settings = _settings({k: [v] for k, v in STATES["flagged-CR2"].items()})
    state = ac.analysis_state(load_dataset("assink2016"), info.mapping, settings)
    assert state.moderated_flags.omnibus_caution()


# -- an upload with a moderator level observed in one study ------------------------------------
def test_an_upload_with_a_one_study_level_tells_one_story():
    at = new_app().run()
    at.switch_page("pages/data.py").run()
    at.file_uploader(key=session.UPLOAD_FILE).upload("sheet.csv", ONE_STUDY_LEVEL, "text/csv")
    at.run()
    mapping = at.session_state[session.UPLOAD_MAPPING]
    mapping = ColumnMapping(**{**mapping.__dict__, "moderators": ("setting",)})
    at.session_state[session.UPLOAD_MAPPING] = mapping
    at.run()
    at.multiselect(key=session.MODERATORS).set_value(["setting"]).run()
    at.switch_page("pages/overview.py").run()
    assert not at.exception, exception_messages(at)

    rows = pd.read_csv(io.BytesIO(ONE_STUDY_LEVEL))
    settings = default_settings(UPLOAD_DATASET, mapping).with_changes(moderators=("setting",))
    state = ac.analysis_state(rows, mapping, settings)
    flags = state.moderated_flags
    assert [level for _, _, level in flags.one_study_levels] == ["clinic"]
    pred = state.pooled_prediction()
    assert _metric(at, "Pooled") == tables.fmt_num(pred["pred"])
    assert _metric(at, "95% confidence") == tables.fmt_interval(pred["ci_lb"], pred["ci_ub"])
    statistic = state.moderated.omnibus[0]
    sentence = next(
        text
        for text in map(unescaped, (m.value for m in at.markdown))
        if f"{statistic:.2f}" in text
    )
    assert "cannot be trusted" in sentence and "single study" in sentence
    assert not VERDICT.search(sentence)
