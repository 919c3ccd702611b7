"""The dashboard run headlessly with AppTest: pages, what-if choices, links, uploads, errors."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from alliance_core.analyses.run import run_analysis
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, list_datasets, load_dataset
from alliance_core.formatting import escape_markdown, format_coefficient
from pages._ui import render, session, tables
from pages._ui.state import UploadRecord
from tests.app.conftest import exception_messages, new_app, page_paths, unescaped

BAD_ROW_CSV = (
    b"study,es_id,label,r,n,n_therapists,design\n"
    b"1,1,Ames (2001),0.30,50,5,RCT\n"
    b"1,2,Ames (2001),abc,50,5,RCT\n"
    b"2,1,Baker (2004),0.20,60,6,other\n"
    b"2,2,Baker (2004),0.28,60,6,other\n"
    b"3,1,Chen (2009),0.35,45,9,RCT\n"
    b"4,1,Diaz (2012),0.25,80,4,other\n"
    b"4,2,Diaz (2012),0.18,80,4,other\n"
    b"5,1,Evans (2015),0.15,120,30,RCT\n"
    b"6,1,Fox (2018),0.40,36,3,other\n"
)

TITLES = {
    "pages/overview.py": "Overview",
    "pages/data.py": "Data",
    "pages/forest.py": "Forest plot",
    "pages/funnel.py": "Publication bias",
    "pages/moderators.py": "Moderators & PTR",
    "pages/sensitivity.py": "Sensitivity",
    "pages/simulator.py": "Simulator",
    "pages/methods.py": "Methods",
}


def assert_clean(at: AppTest) -> None:
    """No exception element and no error box of any kind."""
    assert not at.exception, exception_messages(at)
    assert not [e.value for e in at.error], [e.value for e in at.error]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def shown_table(at: AppTest, index: str):
    """The static table whose first column is `index` ("Statistic", "Term", "Moderator")."""
    return next(t.value for t in at.table if t.value.index.name == index)


def statistic(at: AppTest, name: str) -> str:
    """A value of the Overview's heterogeneity table."""
    return shown_table(at, "Statistic").loc[name, "Value"]


def terms(at: AppTest) -> list[str]:
    """The coefficient labels of the Moderators page's meta-regression table."""
    return shown_table(at, "Term").index.tolist()


def expected_result(name: str, **settings):
    info = dataset_info(name)
    return run_analysis(
        load_dataset(name), info.mapping, AnalysisSettings(dataset=name, **settings)
    ).result


def open_with(query: dict | None = None) -> AppTest:
    at = new_app()
    if query:
        at.query_params.update(query)
    return at.run()


# -- every page on every dataset ----------------------------------------------------------------
_browsers: dict[str, AppTest] = {}


def browsing(dataset: str) -> AppTest:
    """One session per dataset, visiting the pages in turn as a user would."""
    if dataset not in _browsers:
        _browsers[dataset] = open_with({"ds": dataset})
    return _browsers[dataset]


@pytest.mark.parametrize("page", page_paths())
@pytest.mark.parametrize("dataset", [info.name for info in list_datasets()])
def test_every_page_renders_on_every_dataset(dataset, page):
    at = browsing(dataset)
    at.switch_page(page).run()

    assert_clean(at)
    # Pages added later are checked for a title; the known ones for theirs.
    assert at.title and at.title[0].value == TITLES.get(page, at.title[0].value)
    assert at.selectbox(key=session.DATASET).value == dataset
    assert at.query_params["page"] == page.removeprefix("pages/").removesuffix(".py")
    if dataset_info(dataset).simulated:
        assert any("SIMULATED" in md.value for md in at.main.markdown)
        assert any("SIMULATED" in md.value for md in at.sidebar.markdown)


def test_the_default_view_shows_the_models_numbers():
    at = open_with()
    # The Overview reports the pooled model (no moderators) and the PTR moderation in words.
    res = expected_result(DEFAULT_DATASET, moderators=())
    with_ptr = expected_result(DEFAULT_DATASET, moderators=("PTR",))

    assert_clean(at)
    pred = res.predict(transform="r").iloc[0]
    shown = metrics(at)
    assert shown["Pooled r"] == tables.fmt_num(pred["pred"])
    row = with_ptr.coefficients.loc["log_PTR"]
    slope = format_coefficient(row["estimate"], row["se"], minimum=3)[0]
    assert any(slope in unescaped(md.value) for md in at.main.markdown)
    assert shown["95% prediction interval"] == tables.fmt_interval(pred["pi_lb"], pred["pi_ub"])
    assert shown["Effect sizes (k)"] == f"{res.k:,}"
    assert shown["Studies"] == f"{res.n_studies:,}"
    assert statistic(at, "σ² between studies") == tables.fmt_small(res.sigma2["study"])


# -- the what-if choices change the numbers -------------------------------------------------------
def test_model_estimator_and_moderators_change_the_numbers_shown():
    at = open_with()
    three_level = statistic(at, "I² total")

    at.radio(key=session.MODEL).set_value("two-level-independent").run()
    assert_clean(at)
    # The Overview's heterogeneity table is that of the model without moderators.
    two_level = expected_result(DEFAULT_DATASET, model="two-level-independent", moderators=())
    assert statistic(at, "τ²").startswith(tables.fmt_small(two_level.tau2))
    assert statistic(at, "I²").startswith(f"{two_level.I2:.1f}%")
    assert statistic(at, "I²") != three_level

    at.selectbox(key=session.METHOD).set_value("DL").run()
    assert_clean(at)
    dl = expected_result(DEFAULT_DATASET, model="two-level-independent", method="DL", moderators=())
    assert dl.tau2 != pytest.approx(two_level.tau2)
    assert statistic(at, "τ²").startswith(tables.fmt_small(dl.tau2))

    at.switch_page("pages/moderators.py").run()
    before = shown_table(at, "Term")
    at.multiselect(key=session.MODERATORS).select("design").run()
    assert_clean(at)
    after = shown_table(at, "Term")
    with_design = expected_result(
        DEFAULT_DATASET,
        model="two-level-independent",
        method="DL",
        moderators=("PTR", "design"),
    )
    assert len(after) == len(before) + 1
    assert unescaped(after.index[-1]) == "design = RCT (vs other)"
    assert after["Estimate"].tolist() == [
        format_coefficient(row["estimate"], row["se"], minimum=3)[0]
        for _, row in with_design.coefficients.iterrows()
    ]
    assert metrics(at)["Test of moderators"] == tables.test_label(
        with_design.QM, with_design.QM_df, with_design.QM_df2
    )


def test_knapp_hartung_turns_the_coefficient_tests_into_t_tests():
    at = open_with({"model": "2L"})
    at.switch_page("pages/moderators.py").run()
    assert "z" in shown_table(at, "Term").columns

    at.radio(key=session.TEST).set_value("t").run()

    assert_clean(at)
    assert "t" in shown_table(at, "Term").columns
    assert metrics(at)["Test of moderators"].startswith("F(1, ")


def test_a_reference_level_choice_reaches_the_model():
    at = open_with({"mod": ["alliance_rater"]})
    at.switch_page("pages/moderators.py").run()
    # The default reference is the level with the most studies: patient-rated alliance
    # (133 studies of data/alliance_simulated.csv; observer 86), not the alphabetical first.
    assert escape_markdown("alliance_rater = observer (vs patient)") in terms(at)

    at.selectbox(key=session.reference_key("alliance_rater")).set_value("observer").run()

    assert_clean(at)
    assert escape_markdown("alliance_rater = patient (vs observer)") in terms(at)
    assert at.query_params["ref"] == "alliance_rater:observer"


def test_datasets_without_therapist_counts_explain_why_ptr_is_missing():
    at = open_with({"ds": "crede2010"})

    assert_clean(at)
    assert "PTR" not in at.multiselect(key=session.MODERATORS).options
    assert any("therapists per study" in c.value for c in at.sidebar.caption)


# -- links ----------------------------------------------------------------------------------------
def test_a_link_restores_every_sidebar_choice():
    query = {
        "ds": "crede2010",
        "model": "2L-agg",
        "rho": "0.4",
        "est": "DL",
        "test": "t",
        "mod": ["class", "source"],
        # Not the default reference ('journal', the level with the most studies).
        "ref": "source:dissertation",
        "keep": "criterion:grade",
        "page": "overview",
    }
    at = open_with(query)

    assert_clean(at)
    assert at.selectbox(key=session.DATASET).value == "crede2010"
    assert at.radio(key=session.MODEL).value == "two-level-aggregated"
    assert at.number_input(key=session.RHO).value == pytest.approx(0.4)
    assert at.selectbox(key=session.METHOD).value == "DL"
    assert at.radio(key=session.TEST).value == "t"
    assert at.multiselect(key=session.MODERATORS).value == ["class", "source"]
    assert at.selectbox(key=session.reference_key("source")).value == "dissertation"
    assert at.multiselect(key=session.FILTER_COLUMNS).value == ["criterion"]
    assert at.multiselect(key=session.keep_key("criterion")).value == ["grade"]
    assert at.query_params == {**query, "ptr": "log"}


def test_changing_a_widget_writes_the_link():
    at = open_with()
    assert at.query_params["model"] == "3L"

    at.radio(key=session.MODEL).set_value("two-level-aggregated").run()
    assert at.query_params["model"] == "2L-agg"
    assert at.query_params["rho"] == "0.6"

    at.multiselect(key=session.MODERATORS).select("design").run()
    assert at.query_params["mod"] == ["PTR", "design"]

    at.multiselect(key=session.FILTER_COLUMNS).select("alliance_rater").run()
    at.multiselect(key=session.keep_key("alliance_rater")).unselect("other").run()
    assert at.query_params["keep"] == [
        "alliance_rater:observer",
        "alliance_rater:patient",
        "alliance_rater:therapist",
    ]
    assert_clean(at)


def test_a_link_opens_the_page_it_names():
    at = open_with({"page": "moderators", "mod": ["PTR", "design"]})

    assert_clean(at)
    assert at.title[0].value == "Moderators & PTR"
    assert at.multiselect(key=session.MODERATORS).value == ["PTR", "design"]


def test_a_malformed_link_warns_naming_the_parameter_and_uses_defaults():
    at = open_with({"model": "4L", "mod": ["PTR", "nonsense"]})

    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert escape_markdown("model=4L") in warnings
    assert escape_markdown("'nonsense'") in warnings
    assert at.radio(key=session.MODEL).value == "three-level"
    assert at.multiselect(key=session.MODERATORS).value == ["PTR"]
    assert metrics(at)["Effect sizes (k)"] == "811"


def test_settings_loaded_from_a_file_replace_the_sidebar_choices():
    at = open_with()
    saved = AnalysisSettings(
        dataset="assink2016", model="three-level", method="ML", moderators=("deltype",)
    )

    at.session_state[session.PENDING] = AnalysisSettings.from_json(saved.to_json())
    at.run()

    assert_clean(at)
    assert at.selectbox(key=session.DATASET).value == "assink2016"
    assert at.selectbox(key=session.METHOD).value == "ML"
    assert at.multiselect(key=session.MODERATORS).value == ["deltype"]


# -- uploads and user mistakes --------------------------------------------------------------------
def test_an_upload_with_a_bad_row_names_the_row_and_column_and_is_analysed_without_it():
    at = open_with()
    # What the Data page's uploader callback stores (the uploader itself is covered in e2e).
    at.session_state[session.UPLOAD] = UploadRecord.from_bytes(BAD_ROW_CSV, "sheet.csv")
    at.session_state[session.SOURCE] = "upload"
    at.run()

    assert not at.exception
    assert metrics(at)["Effect sizes (k)"] == "8"
    assert at.query_params.get("ds") is None  # an upload cannot travel in a link

    at.switch_page("pages/data.py").run()
    assert not at.exception
    assert any("row 3" in w.value for w in at.warning)
    problems = next(df.value for df in at.dataframe if "severity" in df.value.columns)
    assert problems[["row", "column"]].values.tolist() == [[3, "r"]]
    assert "Row 3, column 'r'" in problems["message"].iloc[0]


def test_a_moderator_with_one_level_shows_an_error_and_the_app_keeps_working():
    at = open_with({"mod": ["alliance_rater"], "keep": "alliance_rater:observer"})

    assert not at.exception
    # The moderator model cannot be fitted; the Overview says why and keeps the pooled model
    # (which needs no moderator) on screen.
    warnings = [w.value for w in at.warning if "cannot be fitted" in w.value]
    assert len(warnings) == 1 and "single level" in warnings[0]
    assert not any(render.UNEXPECTED in e.value for e in at.error)
    assert metrics(at)["Effect sizes (k)"].replace(",", "").isdigit()
    assert at.multiselect(key=session.MODERATORS).value == ["alliance_rater"]

    at.multiselect(key=session.keep_key("alliance_rater")).select("patient").run()

    assert_clean(at)
    assert metrics(at)["Effect sizes (k)"].replace(",", "").isdigit()


def test_three_level_is_not_offered_without_a_study_column():
    at = open_with({"ds": "molloy2014"})

    assert_clean(at)
    assert at.radio(key=session.MODEL).value == "two-level"
    assert at.radio(key=session.MODEL).disabled
    assert any(option.startswith("DL") for option in at.selectbox(key=session.METHOD).options)
