"""The pages say which model their numbers come from, never fit nested rows as independent
silently, offer the paper's model in one click, and word results by the dataset's measure."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from alliance_core.analyses.presets import DEL_RE_2021
from alliance_core.analyses.run import run_analysis
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, load_dataset
from alliance_core.formatting import format_number
from pages._ui import session
from pages._ui.state import UploadRecord
from tests.app.conftest import (
    exception_messages,
    new_app,
    open_sensitivity_tab,
    page_paths,
    unescaped,
)

NUMBER_PAGES = (
    "pages/overview.py",
    "pages/forest.py",
    "pages/funnel.py",
    "pages/moderators.py",
    "pages/sensitivity.py",
)


def open_with(query: dict | None = None) -> AppTest:
    at = new_app()
    if query:
        at.query_params.update(query)
    return at.run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, exception_messages(at)
    assert not [e.value for e in at.error], [e.value for e in at.error]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def all_text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [w.value for w in at.warning] + [i.value for i in at.info]
    return "\n".join(unescaped(p) for p in parts)


def expected(name: str = DEFAULT_DATASET, **settings):
    info = dataset_info(name)
    return run_analysis(
        load_dataset(name), info.mapping, AnalysisSettings(dataset=name, **settings)
    )


# -- two-level models on nested data --------------------------------------------------------
def test_nested_data_offer_the_aggregated_and_the_independent_two_level_model():
    at = open_with()
    assert_clean(at)
    assert at.radio(key=session.MODEL).options == [
        session.MODEL_LABELS["three-level"],
        session.MODEL_LABELS["two-level-aggregated"],
        session.MODEL_LABELS["two-level-independent"],
    ]


def test_the_aggregated_model_shows_one_effect_per_study_and_says_what_it_left_out():
    at = open_with({"model": "2L-agg", "rho": "0.6", "mod": ["PTR", "alliance_rater"]})
    assert_clean(at)
    pooled = expected(model="two-level-aggregated", moderators=()).result
    assert metrics(at)["Studies (k)"] == f"{pooled.k:,}" == "152"
    assert metrics(at)["Effect sizes (combined per study)"] == "811"
    pred = pooled.predict(transform="r").iloc[0]
    assert metrics(at)["Pooled r"] == format_number(pred["pred"])
    text = all_text(at)
    assert "one aggregated effect per study" in text
    assert "Left out of this model: alliance_rater" in text
    assert at.number_input(key=session.RHO).value == pytest.approx(0.6)


def test_rho_changes_the_aggregated_numbers():
    at = open_with({"model": "2L-agg", "rho": "0.9", "mod": "none"})
    assert_clean(at)
    at_09 = expected(model="two-level-aggregated", rho=0.9, moderators=()).result
    at_06 = expected(model="two-level-aggregated", rho=0.6, moderators=()).result
    assert at_09.beta[0] != pytest.approx(at_06.beta[0], rel=1e-6)
    shown = metrics(at)["Pooled r"]
    assert shown == format_number(at_09.predict(transform="r")["pred"].iloc[0])


def test_an_old_two_level_link_on_nested_data_means_the_aggregated_model_and_says_so():
    at = open_with({"model": "2L"})
    assert_clean(at)
    assert at.radio(key=session.MODEL).value == "two-level-aggregated"
    assert any("model=2L" in unescaped(w.value) and "aggregated" in w.value for w in at.warning)
    assert at.query_params["model"] == "2L-agg"


@pytest.mark.parametrize("page", NUMBER_PAGES)
def test_every_page_with_numbers_warns_about_the_independent_fit(page):
    at = open_with({"model": "2L-ind"})
    at.switch_page(page).run()
    assert_clean(at)
    warnings = [w.value for w in at.main.warning]
    assert any(
        "Not recommended" in w and "811 effect sizes" in w and "152 studies" in w for w in warnings
    ), warnings


def test_the_three_level_model_carries_no_independence_warning():
    at = open_with()
    assert not any("Not recommended" in w.value for w in at.warning)


# -- same model, same numbers ----------------------------------------------------------------
@pytest.mark.parametrize("page", NUMBER_PAGES)
def test_every_page_says_which_model_its_numbers_come_from(page):
    at = open_with()
    at.switch_page(page).run()
    assert_clean(at)
    statements = [c.value for c in at.main.caption if "Numbers on this page come from" in c.value]
    assert statements, page
    assert "k = 811 effect sizes in 152 studies" in statements[0].replace("\\", "")


def test_the_overview_states_the_pooled_model_and_how_it_differs_from_the_sidebar():
    at = open_with()
    captions = [c.value.replace("\\", "") for c in at.main.caption]
    assert any("the pooled model without moderators" in c for c in captions)
    assert any("The sidebar's model adds the moderators log PTR" in c for c in captions)


# -- the paper's model in one click ----------------------------------------------------------
def test_the_paper_preset_sets_exactly_its_moderators_and_travels_in_the_link():
    at = open_with()
    assert session.moderator_label("pd") in at.multiselect(key=session.MODERATORS).options
    assert "pd" in at.multiselect(key=session.FILTER_COLUMNS).options
    at.button(key=f"preset:{DEL_RE_2021.key}").click().run()
    assert_clean(at)
    assert at.multiselect(key=session.MODERATORS).value == list(DEL_RE_2021.moderators)
    assert at.radio(key=session.MODEL).value == "three-level"
    assert at.query_params["preset"] == DEL_RE_2021.key
    assert at.query_params["mod"] == list(DEL_RE_2021.moderators)

    fresh = open_with({"preset": DEL_RE_2021.key})
    assert_clean(fresh)
    assert fresh.multiselect(key=session.MODERATORS).value == list(DEL_RE_2021.moderators)


def test_the_paper_preset_is_not_offered_on_other_data():
    at = open_with({"ds": "assink2016"})
    assert not [b for b in at.button if b.key == f"preset:{DEL_RE_2021.key}"]


# -- words match the data ----------------------------------------------------------------------
@pytest.mark.parametrize("dataset", ["assink2016", "konstantopoulos2011"])
def test_standardized_mean_difference_datasets_are_named_as_such(dataset):
    at = open_with({"ds": dataset})
    assert_clean(at)
    text = all_text(at)
    assert "The average standardized mean difference is" in text
    assert "estimate =" not in text
    assert "Pooled SMD" in metrics(at)


@pytest.mark.parametrize("dataset", [DEFAULT_DATASET, "assink2016"])
@pytest.mark.parametrize("page", NUMBER_PAGES)
def test_no_internal_column_names_reach_the_page(dataset, page):
    at = open_with({"ds": dataset})
    at.switch_page(page).run()
    assert_clean(at)
    text = all_text(at).replace("\\_", "_")
    assert "log_PTR" not in text and "log_ptr" not in text


def test_without_therapist_counts_the_moderators_page_does_not_suggest_ptr():
    at = open_with({"ds": "assink2016", "mod": "none", "page": "moderators"})
    at.switch_page("pages/moderators.py").run()
    assert_clean(at)
    text = all_text(at)
    assert "PTR cannot be computed" in text
    assert "for example PTR" not in text


def test_a_one_row_upload_is_told_one_effect_size_cannot_be_meta_analysed():
    at = open_with()
    sheet = b"study,r,n,n_therapists\n1,0.3,50,5\n"
    at.session_state[session.UPLOAD] = UploadRecord.from_bytes(sheet, "one.csv")
    at.session_state[session.SOURCE] = "upload"
    at.run()
    assert not at.exception, exception_messages(at)
    shown = all_text(at) + "\n" + "\n".join(unescaped(e.value) for e in at.error)
    assert "one data row" in shown and "at least two effect sizes" in shown, shown
    assert "same value in every row" not in shown


# -- the Sensitivity page reads like a published table -----------------------------------------
@pytest.mark.parametrize("dataset", [DEFAULT_DATASET, "assink2016"])
def test_sensitivity_tables_have_plain_names_apa_p_and_the_ptr_coefficient_first(dataset):
    # rho = 0: influence diagnostics exist for independent sampling errors only (the page says
    # so under CHE), and this test reads all three tables.
    at = open_with({"ds": dataset, "model": "3L", "rho": "0"})
    at.switch_page("pages/sensitivity.py").run()
    assert_clean(at)
    leave_one_out = next(t.value for t in at.table if "k" in t.value.columns)
    columns = list(leave_one_out.columns)
    for raw in ("left_out", "statistic", "ci_lb", "error", "coef_estimate"):
        assert raw not in columns
    if dataset == DEFAULT_DATASET:
        assert columns[:5] == [
            "Study left out",
            "k",
            "log PTR coefficient",
            "log PTR 95% CI",
            "p (log PTR)",
        ]
        assert "Intercept (r)" in columns
        p_values = leave_one_out["p (log PTR)"]
        assert all(p == "< .001" or (p.startswith(".") and len(p) == 4) for p in p_values)
    else:
        assert columns[:2] == ["Study left out", "k"] and "Pooled SMD" in columns
    open_sensitivity_tab(at, "Influence diagnostics")
    assert_clean(at)
    influence = at.dataframe[0].value
    assert "Cook's distance" in influence.columns


def test_cumulative_chart_is_on_the_r_scale_with_named_series():
    at = open_with()
    at.switch_page("pages/sensitivity.py").run()
    open_sensitivity_tab(at, "Cumulative meta-analysis")
    chart = next(c for c in at.get("vega_lite_chart"))
    spec = str(chart.proto.spec) + str(chart.proto.datasets) + str(chart.proto.data)
    assert "Pooled r" in spec and "Lower CI limit" in spec
    assert "in order of year" in spec


_aggregated: dict[str, AppTest] = {}


@pytest.mark.parametrize("page", page_paths())
@pytest.mark.parametrize("dataset", [DEFAULT_DATASET, "assink2016", "crede2010"])
def test_every_page_renders_the_aggregated_model(dataset, page):
    if dataset not in _aggregated:
        _aggregated[dataset] = open_with({"ds": dataset, "model": "2L-agg"})
    at = _aggregated[dataset]
    at.switch_page(page).run()
    assert_clean(at)
    assert at.radio(key=session.MODEL).value == "two-level-aggregated"
