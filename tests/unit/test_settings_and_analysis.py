"""Analysis settings (URL and JSON round trips), run_analysis, and the plain-language readings."""

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.analyses.run import LOG_PTR_COLUMN, PTR_COLUMN, effect_size_table, run_analysis
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.mapping import ColumnMapping
from alliance_core.formatting import format_coefficient
from alliance_core.wording import reading


@pytest.fixture
def sheet():
    """A small seeded coding sheet: 20 studies, 1-4 correlations each, PTR moderation built in."""
    rng = np.random.default_rng(21)
    sizes = rng.integers(1, 5, 20)
    study = np.repeat(np.arange(20), sizes)
    n = rng.integers(30, 200, 20)[study]
    therapists = np.maximum(1, (n / rng.uniform(1, 25, 20)[study]).astype(int))
    rater = rng.choice(["patient", "observer", "therapist"], len(study))
    z = 0.35 - 0.05 * np.log(n / therapists) + rng.normal(0, 0.05, 20)[study]
    r = np.tanh(z + rng.normal(0, 1 / np.sqrt(n - 3)))
    return pd.DataFrame(
        {
            "study": study,
            "r": r,
            "n": n,
            "therapists": therapists,
            "rater": rater,
            "design": rng.choice(["RCT", "other"], len(study)),
        }
    )


@pytest.fixture
def mapping():
    return ColumnMapping(
        study="study", r="r", n="n", n_therapists="therapists", moderators=("rater", "design")
    )


def test_query_round_trip_restores_every_choice():
    settings = AnalysisSettings(
        dataset="molloy2014",
        model="two-level",
        method="PM",
        test="t",
        moderators=("PTR", "rater"),
        reference={"rater": "observer"},
        filters={"design": ("RCT",), "rater": ("observer", "patient")},
        ptr_scale="raw",
        page="moderators",
    )
    assert AnalysisSettings.from_query(settings.to_query()) == settings
    assert AnalysisSettings.from_json(settings.to_json()) == settings


def test_empty_moderator_list_survives_the_url():
    settings = AnalysisSettings(moderators=())
    assert AnalysisSettings.from_query(settings.to_query()).moderators == ()


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ({"model": "4L"}, "not one of 2L, 2L-agg, 2L-ind, 3L"),
        ({"est": "DL"}, "not fitted by 'DL'"),
        ({"ref": "rater"}, "column:level"),
    ],
)
def test_malformed_links_name_the_parameter(query, needle):
    with pytest.raises(ac.AnalysisError, match=needle):
        AnalysisSettings.from_query(query)


def test_settings_file_that_is_not_ours_is_refused():
    with pytest.raises(ac.AnalysisError, match="not a settings file"):
        AnalysisSettings.from_json('{"a": 1}')
    with pytest.raises(ac.AnalysisError, match="not valid JSON"):
        AnalysisSettings.from_json("{nope")


def test_engine_test_maps_t_to_knapp_hartung_or_t():
    assert AnalysisSettings(model="two-level", test="t").engine_test == "knha"
    assert AnalysisSettings(model="three-level", test="t").engine_test == "t"


def test_ptr_is_patients_over_therapists_and_enters_on_the_chosen_scale(sheet, mapping):
    table = effect_size_table(sheet, mapping)
    np.testing.assert_allclose(table[PTR_COLUMN], sheet["n"] / sheet["therapists"])
    np.testing.assert_allclose(table[LOG_PTR_COLUMN], np.log(sheet["n"] / sheet["therapists"]))
    log_run = run_analysis(sheet, mapping, AnalysisSettings(moderators=("PTR",), ptr_scale="log"))
    raw_run = run_analysis(sheet, mapping, AnalysisSettings(moderators=("PTR",), ptr_scale="raw"))
    assert LOG_PTR_COLUMN in log_run.result.coefficients.index
    assert PTR_COLUMN in raw_run.result.coefficients.index
    # New analyses assume the CHE working model at the default rho.
    direct = ac.fit(table, moderators=[LOG_PTR_COLUMN], cluster="study", rho=0.6)
    np.testing.assert_allclose(log_run.result.beta, direct.beta)


def test_filters_are_a_view_and_are_reported(sheet, mapping):
    before = sheet.copy()
    settings = AnalysisSettings(
        moderators=(), filters={"rater": ("observer",)}, model="two-level-independent"
    )
    run = run_analysis(sheet, mapping, settings)
    assert run.result.k == int((sheet["rater"] == "observer").sum())
    assert run.excluded_by_filter == int((sheet["rater"] != "observer").sum())
    assert "left out by the filter" in run.notes[0]
    pd.testing.assert_frame_equal(sheet, before)


def test_filter_that_leaves_nothing_is_a_clear_error(sheet, mapping):
    with pytest.raises(ac.AnalysisError, match="leaves no effect sizes"):
        run_analysis(sheet, mapping, AnalysisSettings(filters={"rater": ("nobody",)}))


def test_ptr_without_therapists_is_explained(sheet):
    mapping = ColumnMapping(study="study", r="r", n="n")
    with pytest.raises(ac.AnalysisError, match="number of therapists"):
        run_analysis(sheet, mapping, AnalysisSettings(moderators=("PTR",)))


def test_readings_follow_the_numbers(sheet, mapping):
    run = run_analysis(sheet, mapping, AnalysisSettings(moderators=("PTR",)))
    res = run.result
    text = reading.ptr_effect(res, LOG_PTR_COLUMN)
    row = res.coefficients.loc[LOG_PTR_COLUMN]
    assert format_coefficient(row["estimate"], row["se"], minimum=3)[0] in text
    if row["pval"] < 0.05:
        assert "weaker" in text if row["estimate"] < 0 else "stronger" in text
    else:
        assert "do not support" in text
    pooled = reading.pooled_effect(ac.fit(run.data, cluster="study"))
    assert "prediction interval" in pooled
    assert "between studies" in reading.heterogeneity(res)
    assert "QM(1)" in reading.moderator_test(res) or "F(1" in reading.moderator_test(res)


def test_unsupported_moderator_is_said_to_be_unsupported():
    rng = np.random.default_rng(5)
    k = 40
    data = pd.DataFrame(
        {"yi": rng.normal(0.3, 0.1, k), "vi": np.full(k, 0.01), "noise": rng.normal(size=k)}
    )
    res = ac.fit(data, moderators=["noise"])
    assert res.coefficients.loc["noise", "pval"] >= 0.05  # pure noise, for this seed
    assert "do not support" in reading.ptr_effect(res, "noise")
    assert "do not significantly" in reading.moderator_test(res)
