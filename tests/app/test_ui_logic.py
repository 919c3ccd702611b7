"""The dashboard's plain logic, without Streamlit: links, reconciling choices, uploads, tables."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from alliance_core.analyses.run import effect_size_table, run_analysis
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, load_dataset
from alliance_core.errors import AnalysisError
from pages._ui import state, tables

# A coding sheet whose third spreadsheet row (second data row) has a correlation that is text.
BAD_ROW_CSV = (
    b"study,es_id,r,n,n_therapists,design\n"
    b"1,1,0.30,50,5,RCT\n"
    b"2,1,abc,40,4,other\n"
    b"3,1,0.20,60,6,RCT\n"
    b"4,1,0.35,45,9,other\n"
    b"5,1,0.25,80,4,RCT\n"
    b"6,1,0.15,120,30,other\n"
)


def table_of(name: str):
    info = dataset_info(name)
    return info, effect_size_table(load_dataset(name), info.mapping)


def reconciled(name: str, **draft):
    info, table = table_of(name)
    choices = state.offered_choices(name, info.mapping, table)
    return state.reconcile(state.Draft(dataset=name, **draft), choices, table), table


# -- links -----------------------------------------------------------------------------------
def defaults_for(name: str) -> AnalysisSettings:
    return state.default_settings(name, dataset_info(name).mapping)


def test_a_full_link_round_trips_through_the_query_string():
    settings = AnalysisSettings(
        dataset="crede2010",
        model="two-level",
        method="DL",
        test="t",
        moderators=("criterion", "source"),
        reference={"source": "journal"},
        filters={"class": ("science",)},
        ptr_scale="raw",
        page="forest",
    )
    query = state.link_query(settings)

    restored, problems = state.settings_from_link(query, defaults_for)

    assert problems == []
    assert restored == settings


def test_a_malformed_parameter_is_named_and_the_rest_of_the_link_is_kept():
    query = {"ds": ["molloy2014"], "model": ["4L"], "est": ["XYZ"], "mod": ["design"]}

    settings, problems = state.settings_from_link(query, defaults_for)

    assert settings.dataset == "molloy2014"
    assert settings.model == "two-level"  # molloy2014's default: it has no study column
    assert settings.method == "REML"
    assert settings.moderators == ("design",)
    assert any("model=4L" in p for p in problems)
    assert any("est=XYZ" in p for p in problems)


def test_an_unknown_dataset_or_parameter_in_a_link_is_reported():
    settings, problems = state.settings_from_link({"ds": ["nope"], "mods": ["x"]}, defaults_for)

    assert settings.dataset == DEFAULT_DATASET
    assert any("ds=nope" in p for p in problems)
    assert any("'mods'" in p for p in problems)


def test_a_link_made_on_an_upload_names_no_dataset():
    settings = AnalysisSettings(dataset=state.UPLOAD_DATASET, model="two-level", moderators=())

    query = state.link_query(settings)

    assert "ds" not in query
    assert query["model"] == ["2L"]
    assert query["mod"] == ["none"]


# -- reconciling what was asked with what the table offers ------------------------------------
def test_three_level_without_a_study_column_falls_back_to_two_level():
    rec, _ = reconciled("molloy2014", model="three-level", method="REML")

    assert rec.settings.model == "two-level"
    assert any("study column" in note for note in rec.notes)


def test_an_estimator_of_the_other_model_falls_back_to_reml():
    rec, _ = reconciled(DEFAULT_DATASET, model="three-level", method="DL")

    assert rec.settings.method == "REML"
    assert any("'DL'" in note for note in rec.notes)


def test_ptr_without_therapist_counts_is_dropped_with_the_reason():
    rec, _ = reconciled("crede2010", model="three-level", moderators=("PTR", "criterion"))

    assert rec.settings.moderators == ("criterion",)
    assert any("therapists" in note for note in rec.notes)


def test_unknown_moderators_filters_and_levels_are_dropped_and_named():
    rec, _ = reconciled(
        DEFAULT_DATASET,
        moderators=("PTR", "nonsense"),
        filters={"alliance_rater": ("observer", "martian"), "colour": ("red",)},
    )

    assert rec.settings.moderators == ("PTR",)
    assert rec.settings.filters == {"alliance_rater": ("observer",)}
    notes = " ".join(rec.notes)
    assert "'nonsense'" in notes and "martian" in notes and "'colour'" in notes


def test_a_filter_column_without_levels_filters_nothing_but_stays_picked():
    rec, _ = reconciled(DEFAULT_DATASET, filters={"design": ()})

    assert rec.settings.filters == {}
    assert rec.filter_columns == ("design",)
    assert rec.filter_levels == {"design": ()}


def test_a_reference_level_must_survive_the_filter_and_the_default_stays_implicit():
    rec, table = reconciled(
        DEFAULT_DATASET,
        moderators=("alliance_rater", "design"),
        reference={"alliance_rater": "observer", "design": "other"},
        filters={"alliance_rater": ("patient", "therapist")},
    )

    # observer is filtered out; "other" is design's first level, so it is the default anyway.
    assert rec.settings.reference == {}
    assert any("'observer'" in note for note in rec.notes)
    assert rec.reference_levels(table, "alliance_rater") == ("patient", "therapist")


def test_a_chosen_reference_level_is_kept():
    rec, _ = reconciled(
        DEFAULT_DATASET, moderators=("design",), reference={"design": "RCT"}, filters={}
    )

    assert rec.settings.reference == {"design": "RCT"}
    assert rec.notes == ()


def test_offered_choices_list_ptr_first_and_categorical_levels_in_model_order():
    info, table = table_of(DEFAULT_DATASET)

    choices = state.offered_choices(DEFAULT_DATASET, info.mapping, table)

    assert choices.moderators[0] == "PTR"
    assert "pd_share" in choices.moderators and "pd_share" not in choices.categorical
    assert choices.categorical["design"] == ("other", "RCT")
    assert set(choices.filter_columns) == {
        "alliance_rater",
        "outcome_rater",
        "alliance_measure",
        "design",
        "pd",  # personality disorder in the sample: yes/no
    }


# -- uploads ---------------------------------------------------------------------------------
def test_an_upload_with_a_bad_row_is_read_mapped_and_its_row_and_column_named():
    record, uploaded, mapping = state.accept_upload(BAD_ROW_CSV, "sheet.csv")
    report = uploaded.validate(mapping)

    assert record.name == "sheet.csv" and len(record.sha) == 64
    assert (mapping.study, mapping.r, mapping.n, mapping.n_therapists) == (
        "study",
        "r",
        "n",
        "n_therapists",
    )
    problems = report.problems_frame()
    assert problems[["row", "column"]].values.tolist() == [[3, "r"]]
    assert "Row 3, column 'r'" in problems["message"].iloc[0]
    assert report.n_usable == 5
    assert "row 3" in report.summary()


def test_an_upload_is_never_modified_by_validation():
    record, uploaded, mapping = state.accept_upload(BAD_ROW_CSV, "sheet.csv")
    before = uploaded.frame.copy()

    uploaded.validate(mapping)

    pd.testing.assert_frame_equal(uploaded.frame, before)
    assert record.content == BAD_ROW_CSV


def test_a_file_that_is_not_a_table_raises_a_message_for_the_user():
    with pytest.raises(AnalysisError):
        state.accept_upload(b"\x00\x01\x02 binary", "sheet.csv")


def test_the_upload_reader_can_be_swapped_for_a_cached_one():
    calls = []

    def reader(sha, name, content):
        calls.append((sha, name))
        return state.read_table(content, name)

    record, _, _ = state.accept_upload(BAD_ROW_CSV, "sheet.csv", read=reader)

    assert calls == [(record.sha, "sheet.csv")]


# -- tables and downloads ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def default_run():
    info = dataset_info(DEFAULT_DATASET)
    settings = AnalysisSettings(moderators=("PTR", "alliance_rater"))
    return run_analysis(load_dataset(DEFAULT_DATASET), info.mapping, settings)


@pytest.mark.parametrize(
    ("p", "text"), [(0.0004, "< .001"), (0.021, ".021"), (0.5, ".500"), (float("nan"), "–")]
)
def test_p_values_are_written_apa_style(p, text):
    assert tables.fmt_p(p) == text


def test_numbers_use_a_true_minus_and_tiny_variances_keep_significant_digits():
    assert tables.fmt_num(-0.0196, 3) == "\u22120.020"
    assert tables.fmt_num(-0.0001, 3) == "0.000"
    assert tables.fmt_small(0.00001234) == "1.23e-05"
    assert tables.fmt_small(0.0094) == "0.0094"


def test_results_csv_holds_every_coefficient_and_test_of_the_model(default_run):
    res = default_run.result
    frame = pd.read_csv(io.BytesIO(tables.results_csv(default_run)))

    coefficients = frame[frame["section"] == "coefficient"].set_index("name")
    assert list(coefficients.index) == list(res.coefficients.index)
    np.testing.assert_allclose(coefficients["estimate"], res.coefficients["estimate"])
    np.testing.assert_allclose(coefficients["pval"], res.coefficients["pval"])
    tests = frame[frame["section"] == "test"].set_index("name")
    assert tests.loc["QM", "statistic"] == pytest.approx(res.QM)
    assert tests.loc["QE", "df"] == res.QE_df
    wald = res.wald_test(["alliance_rater"])
    assert tests.loc["wald_alliance_rater", "statistic"] == pytest.approx(wald.statistic)
    heterogeneity = frame[frame["section"] == "heterogeneity"].set_index("name")
    assert heterogeneity.loc["sigma2_study", "estimate"] == pytest.approx(res.sigma2["study"])
    assert heterogeneity.loc["I2", "estimate"] == pytest.approx(res.I2)
    prediction = frame[frame["section"] == "prediction"].iloc[0]
    expected = res.predict(transform="r").iloc[0]
    assert prediction["estimate"] == pytest.approx(expected["pred"])
    assert prediction["pi_ub"] == pytest.approx(expected["pi_ub"])


def test_the_data_csv_holds_exactly_the_analysed_rows(default_run):
    frame = pd.read_csv(io.BytesIO(tables.data_csv(default_run)))

    assert len(frame) == default_run.result.k
    np.testing.assert_allclose(frame["yi"], default_run.result.data["yi"])


def test_coefficient_table_names_levels_against_their_reference(default_run):
    shown = tables.coefficient_table(default_run.result)

    assert shown["Term"].tolist()[:2] == ["Intercept", "log PTR"]
    # The default reference is the level with the most studies (patient-rated alliance).
    assert "alliance_rater = therapist (vs patient)" in shown["Term"].tolist()
    assert list(shown.columns) == ["Term", "Estimate", "SE", "z", "p", "95% CI"]


def test_wald_table_has_one_row_per_categorical_moderator(default_run):
    wald = tables.wald_table(default_run.result)

    assert wald["Moderator"].tolist() == ["alliance_rater"]
    assert wald["Test"].iloc[0].startswith("QM(3) = ")


def test_heterogeneity_table_reports_both_levels_of_a_three_level_model(default_run):
    shown = tables.heterogeneity_table(default_run.result)

    assert shown["Statistic"].tolist()[:2] == ["σ² between studies", "σ² within studies"]
    assert shown["Value"].iloc[-1].startswith(f"Q({default_run.result.QE_df}) = ")


def test_profiles_come_from_filled_rows_only(default_run):
    columns = tables.ProfileColumns.of(default_run.result, "log_PTR")
    rows = columns.empty_editor_frame()
    rows.loc[0, [tables.PROFILE_NAME, "alliance_rater"]] = ["Observer-rated", "observer"]
    rows.loc[2, "alliance_rater"] = "martian"

    profiles, notes = tables.profiles_from_rows(rows, columns)

    assert columns.names == ("alliance_rater",)  # PTR is the x axis, never a profile value
    assert profiles == [{"name": "Observer-rated", "values": {"alliance_rater": "observer"}}]
    assert any("martian" in note for note in notes)


def test_profiles_beyond_four_are_dropped_with_a_note(default_run):
    columns = tables.ProfileColumns.of(default_run.result, "log_PTR")
    rows = columns.empty_editor_frame(rows=6)
    rows["alliance_rater"] = ["observer", "patient", "therapist", "other", "patient", "other"]

    profiles, notes = tables.profiles_from_rows(rows, columns)

    assert [p["name"] for p in profiles] == [
        "alliance_rater = observer",
        "alliance_rater = patient",
        "alliance_rater = therapist",
        "alliance_rater = other",
    ]
    assert notes and "first 4" in notes[0]


def test_results_csv_adds_the_robust_rows_when_given(default_run):
    robust = default_run.result.robust(method="CR2")
    frame = pd.read_csv(io.BytesIO(tables.results_csv(default_run, robust=robust)))
    rows = frame[frame["section"] == "robust coefficient"].set_index("name")
    assert list(rows.index) == list(robust.coefficients.index)
    np.testing.assert_allclose(rows["se"], robust.coefficients["se"])
    np.testing.assert_allclose(rows["df"], robust.coefficients["df"])  # Satterthwaite, fractional
    tests = frame[frame["section"] == "robust test"].set_index("name")
    assert tests.loc["QM", "df2"] == pytest.approx(robust.QM_df[1])
    assert tests.loc["wald_alliance_rater", "statistic"] == pytest.approx(
        robust.wald_test(["alliance_rater"]).statistic
    )
