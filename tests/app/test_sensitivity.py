"""The Sensitivity page: leave-one-out, influence, cumulative and the specification curve."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from alliance_core.analyses.dependence import rho_sensitivity
from alliance_core.analyses.run import effect_size_table, run_analysis
from alliance_core.analyses.sensitivity import cumulative, leave_one_out
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.analyses.specification import specification_curve
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, list_datasets, load_dataset
from alliance_core.formatting import escape_markdown, format_number
from alliance_core.model.design import INTERCEPT
from pages._ui import sensitivity_tables as display
from tests.app.conftest import open_sensitivity_tab, unescaped

APP = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture(scope="module")
def sensitivity() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.run()
    at.switch_page("pages/sensitivity.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_leave_one_out_reading_is_the_engines(sensitivity):
    info = dataset_info(DEFAULT_DATASET)
    res = run_analysis(load_dataset(DEFAULT_DATASET), info.mapping, AnalysisSettings()).result
    # Correlations: the reading states the intercept as r, the scale of the table beside it.
    expected = leave_one_out(res).describe("r")
    assert any(md.value == escape_markdown(expected) for md in sensitivity.markdown)


def between(text: str, before: str, after: str) -> str:
    return text.split(before, 1)[1].split(after, 1)[0]


def test_leave_one_out_sentence_numbers_are_the_tables():
    """The sentence's intercept range is the smallest and largest value of the table's
    "Intercept (r)" column, and the PTR coefficient in it says it is on Fisher's z."""
    info = dataset_info(DEFAULT_DATASET)
    res = run_analysis(load_dataset(DEFAULT_DATASET), info.mapping, AnalysisSettings()).result
    result = leave_one_out(res)
    text = result.describe("r")
    shown = display.leave_one_out_display(
        result.table, unit="study", coefficient=result.coefficient, on_r=True, has_moderators=True
    )
    column = [float(v.replace("\u2212", "-")) for v in shown["Intercept (r)"]]
    low = between(text, "ranged from ", " to ")
    high = between(text, f"ranged from {low} to ", ";")
    assert (low, high) == (format_number(min(column), 3), format_number(max(column), 3))
    assert "The intercept (the expected effect with every moderator at zero" in text
    assert "log PTR coefficient (on Fisher's z) ranged from" in text
    z_range = f"{result.table['estimate'].min():.3f}"
    assert z_range not in text  # the Fisher's z value of the intercept is not stated as r


def test_cumulative_tab_states_its_own_model_and_its_sentence_is_on_the_charts_scale():
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.run()
    at.switch_page("pages/sensitivity.py").run()
    at = open_sensitivity_tab(at, "Cumulative meta-analysis")
    assert not at.exception, [e.message for e in at.exception]
    statements = [c.value.replace("\\", "") for c in at.main.caption if "Numbers " in c.value]
    # The page's statement names the sidebar's model and says this tab follows another; the
    # tab's own statement names the model without moderators: no two say "this page".
    assert sum("Numbers on this page" in c for c in statements) == 1
    assert any("cumulative meta-analysis follows the same model without" in c for c in statements)
    assert any(
        c.startswith(":material/functions: Numbers in this tab come from the pooled model")
        for c in statements
    )
    info = dataset_info(DEFAULT_DATASET)
    table = effect_size_table(load_dataset(DEFAULT_DATASET), info.mapping)
    pooled = run_analysis(
        load_dataset(DEFAULT_DATASET), info.mapping, AnalysisSettings(moderators=()), table=table
    ).result
    steps = cumulative(pooled, order_by=info.mapping.year)
    expected = steps.describe("r")
    assert any(md.value == escape_markdown(expected) for md in at.markdown)
    chart = display.cumulative_chart(steps.table, on_r=True)
    last = format_number(chart["Pooled r"].iloc[-1], 3)
    assert f"to {last} (all {pooled.k} effect sizes)" in expected


def test_only_the_open_tab_runs_its_analysis(sensitivity):
    # The first tab (leave one out) is open: the other analyses have not run, so none of
    # their readings or controls are on the page.
    assert [tab.label for tab in sensitivity.tabs] == [
        "Leave one out",
        "Influence diagnostics",
        "Cumulative meta-analysis",
        "Sampling correlation and inference",
        "Specification curve",
    ]
    texts = [md.value for md in sensitivity.markdown]
    assert not any("Cumulative meta" in t for t in texts)
    assert not [w for w in sensitivity.multiselect if w.key == "spec:controls"]


def test_specification_curve_share_matches_a_direct_computation(sensitivity):
    at = open_sensitivity_tab(sensitivity, "Specification curve")
    controls = at.multiselect(key="spec:controls").value
    at.toggle(key="spec:run").set_value(True).run()
    assert not at.exception, [e.message for e in at.exception]
    info = dataset_info(DEFAULT_DATASET)
    table = effect_size_table(load_dataset(DEFAULT_DATASET), info.mapping)
    # Nested rows: the page fits the three-level model only (the two-level fit would treat
    # the effect sizes of a study as independent).
    curve = specification_curve(
        table,
        {"yi": "yi", "vi": "vi", "study": info.mapping.study},
        "log_PTR",
        controls,
        models=("three-level",),
        # The curve follows the sidebar's sampling correlation (the CHE default).
        rhos=(AnalysisSettings().che_rho,),
    )
    shown = next(m.value for m in at.metric if m.label.startswith("Specifications with"))
    assert shown == f"{curve.share_significant:.0%}"
    assert any(md.value == escape_markdown(curve.describe()) for md in at.markdown)
    assert any("Left out: the two-level model" in c.value for c in at.caption)


@pytest.mark.parametrize("dataset", [info.name for info in list_datasets()])
def test_every_tab_runs_cleanly_on_every_bundled_dataset(dataset):
    # Only the open tab runs, so each tab is opened in turn: none may raise or show an error,
    # and each shows something of its own.
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.query_params["ds"] = dataset
    at.run()
    at.switch_page("pages/sensitivity.py").run()
    labels = [tab.label for tab in at.tabs]
    assert labels[:2] == ["Leave one out", "Influence diagnostics"]
    for label in labels:
        open_sensitivity_tab(at, label)
        assert not at.exception, (label, [e.message for e in at.exception])
        assert not at.error, (label, [e.value for e in at.error])
        shown = next(tab for tab in at.tabs if tab.label == label)
        assert len(shown.children) > 0, f"tab {label!r} is empty on {dataset}"
        closed = [tab.label for tab in at.tabs if tab.label != label and len(tab.children)]
        assert not closed, f"closed tabs ran: {closed}"


def test_the_table_of_every_refit_is_filled_when_opened():
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.run()
    at.switch_page("pages/sensitivity.py").run()
    every = next(e for e in at.expander if e.label.startswith("All "))
    assert len(every.children) == 0  # closed: nothing sent
    at.session_state["loo:all"] = True
    at.run()
    every = next(e for e in at.expander if e.label.startswith("All "))
    table = every.children[0].value
    n_studies = int(every.label.split()[1])
    assert len(table) == n_studies and "Study left out" in table.columns


# -- the open tab travels in the link -------------------------------------------------------------
def open_link(query: dict) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.query_params.update(query)
    at.run()
    return at


def test_a_link_naming_a_tab_opens_it_and_the_open_tab_is_written_to_the_link():
    at = open_link({"page": "sensitivity", "tab": "cumulative"})  # opens on that page
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    opened = next(tab for tab in at.tabs if tab.label == "Cumulative meta-analysis")
    assert len(opened.children) > 0
    assert at.query_params["tab"] == "cumulative"
    open_sensitivity_tab(at, "Influence diagnostics")
    assert at.query_params["tab"] == "influence"
    open_sensitivity_tab(at, "Leave one out")
    assert "tab" not in at.query_params  # the first tab stays out of the link


def test_a_link_naming_a_tab_this_data_lacks_says_so_as_text_and_opens_the_first():
    # molloy2014 has no therapist counts, so no ρ tab; the value is quoted as text.
    at = open_link({"ds": "molloy2014", "page": "sensitivity", "tab": "rho[x](http://e.com)"})
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any(
        "Link parameter tab=rho[x](http://e.com): not available" in unescaped(w) for w in warnings
    ), warnings
    assert not any("](http" in w for w in warnings)  # escaped: no live link
    first = next(tab for tab in at.tabs if tab.label == "Leave one out")
    assert len(first.children) > 0


# -- one story on the page: the tab the caption names, the row the sentence names -----------------
def opened_sensitivity(query: dict) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=300)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    at.switch_page("pages/sensitivity.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_without_ptr_the_caption_names_a_tab_the_page_has():
    """Data without therapist counts under CR2: the caption's tab is there and compares the
    pooled estimate's model-based and CR2 intervals (the engine's rho_sensitivity of the
    model without moderators); the specification curve, which follows PTR, is not offered."""
    at = opened_sensitivity({"ds": "assink2016", "mod": "deltype", "inf": "CR2"})
    labels = [tab.label for tab in at.tabs]
    caption = next(c.value for c in at.caption if "Leave-one-out, influence" in c.value)
    assert "Sampling correlation and inference" in caption
    assert "Sampling correlation and inference" in labels
    assert "Specification curve" not in labels
    at = open_sensitivity_tab(at, "Sampling correlation and inference")
    assert not at.exception, [e.message for e in at.exception]
    info = dataset_info("assink2016")
    settings = AnalysisSettings(
        dataset="assink2016", moderators=(), inference="CR2", model="three-level"
    )
    expected = rho_sensitivity(load_dataset("assink2016"), info.mapping, settings, INTERCEPT)
    shown = display.dependence_display(expected, 0.95)
    assert any(t.value.equals(shown) for t in at.table if t.value.shape == shown.shape)
    assert any("the pooled estimate (the model without moderators)" in m.value for m in at.markdown)


def test_the_row_the_sentence_says_moved_most_heads_the_table():
    """assink2016 filtered to overt delinquency with year as moderator: the sentence's
    "Leaving out study N moved it most" is the first row of the table of rows that move the
    estimate most, both measured from the full model's value."""
    query = {"ds": "assink2016", "keep": "deltype:overt", "mod": "year"}
    at = opened_sensitivity(query)
    sentence = next(m.value for m in at.markdown if "moved it most" in m.value)
    named = between(unescaped(sentence), "Leaving out study ", " moved it most")
    heading = next(c for c in at.caption if "rows that move" in c.value)
    assert "the estimate most" in heading.value
    table = next(t.value for t in at.table if "Study left out" in t.value.columns)
    assert str(table["Study left out"].iloc[0]) == named
    # Independently: the refit furthest from the full model's intercept.
    info = dataset_info("assink2016")
    settings = AnalysisSettings(
        dataset="assink2016", moderators=("year",), filters={"deltype": ("overt",)}
    )
    res = run_analysis(load_dataset("assink2016"), info.mapping, settings).result
    result = leave_one_out(res)
    change = (result.table["estimate"] - res.coefficients["estimate"].iloc[0]).abs()
    assert str(change.idxmax()) == named
