"""The specification curve: every row is the model the engine fits for that choice of controls.

Each specification's PTR coefficient is compared with ``alliance_core.fit`` on the same rows
and moderators (a separate path through the engine, itself checked against metafor), the
change in r with ``MetaResult.predict``, and the estimates of a seeded simulation with
known truth with that truth.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.analyses.run import effect_size_table
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.analyses.specification import specification_curve
from alliance_core.analyses.state import analysis_state
from alliance_core.data.datasets import dataset_info, load_dataset
from alliance_core.data.mapping import ColumnMapping
from alliance_core.errors import AnalysisError
from alliance_core.figures import specification_figure

CONTROLS = ("alliance_rater", "design", "pd_share")


@functools.cache
def default_data() -> tuple[pd.DataFrame, ac.ColumnMapping]:
    return load_dataset("alliance_simulated"), dataset_info("alliance_simulated").mapping


@functools.cache
def default_curve():
    data, mapping = default_data()
    return specification_curve(data, mapping, "log_PTR", CONTROLS)


def test_one_row_per_subset_of_controls_and_model():
    curve = default_curve()
    table = curve.table
    assert len(table) == 2**3 * 2
    assert table["error"].isna().all()
    subsets = {tuple(row) for row in table[list(CONTROLS)].itertuples(index=False)}
    assert len(subsets) == 8
    assert table.groupby("model").size().to_dict() == {"three-level": 8, "two-level": 8}
    assert (table["k"] == 811).all()
    assert table.loc[table["model"] == "three-level", "n_studies"].eq(152).all()


def test_every_specification_equals_the_engine_fit_with_those_moderators():
    data, mapping = default_data()
    table = effect_size_table(data, mapping)
    curve = default_curve()
    for label, row in curve.table.iterrows():
        moderators = ["log_PTR", *(c for c in CONTROLS if row[c])]
        res = ac.fit(
            table,
            moderators=moderators,
            cluster="study" if row["model"] == "three-level" else None,
            method=row["method"],
        )
        expected = res.coefficients.loc["log_PTR"]
        for field in ("estimate", "se", "ci_lb", "ci_ub"):
            assert row[field] == pytest.approx(expected[field], rel=1e-8), (label, field)
        assert row["pval"] == pytest.approx(expected["pval"], rel=1e-7, abs=1e-12)
        # the change in r from PTR 1 to 10, other moderators at mean / reference level
        pred = res.predict({"log_PTR": [0.0, np.log(10.0)]}, transform="r")["pred"]
        assert row["delta"] == pytest.approx(pred.iloc[1] - pred.iloc[0], rel=1e-8)


def test_share_significant_counts_the_fitted_specifications():
    curve = default_curve()
    alpha = 1 - curve.level
    assert curve.share_significant == pytest.approx((curve.table["pval"] < alpha).mean())
    assert curve.n_failed == 0
    text = curve.describe()
    assert "16 specifications" in text and "811 effect sizes" in text


def test_known_negative_ptr_slope_is_recovered_in_every_specification():
    """Seeded simulation: z = 0.35 - 0.06 log(PTR) + noise, controls unrelated to the effect."""
    rng = np.random.default_rng(2024)
    studies = 200
    sizes = rng.integers(1, 5, studies)
    study = np.repeat(np.arange(studies), sizes)
    log_ptr = rng.uniform(0, np.log(50), studies)[study]
    n = rng.integers(40, 300, studies)[study]
    vi = 1.0 / (n - 3)
    u = rng.normal(0, 0.06, studies)[study]
    yi = 0.35 - 0.06 * log_ptr + u + rng.normal(0, 0.04, len(study)) + rng.normal(0, np.sqrt(vi))
    data = pd.DataFrame(
        {
            "yi": yi,
            "vi": vi,
            "study": study,
            "log_PTR": log_ptr,
            "rater": rng.choice(["patient", "observer", "therapist"], len(study)),
            "rct": rng.choice(["yes", "no"], studies)[study],
            "year": rng.integers(1980, 2020, studies)[study],
        }
    )
    curve = specification_curve(
        data, {"yi": "yi", "vi": "vi", "study": "study"}, "log_PTR", ["rater", "rct", "year"]
    )
    table = curve.table
    assert curve.delta_scale is None  # effect sizes given directly: delta on their scale
    assert (table["estimate"] < 0).all()
    assert ((table["estimate"] - -0.06).abs() < 4 * table["se"]).all()


def test_progress_is_reported_after_every_specification():
    data, mapping = default_data()
    calls = []
    specification_curve(
        data,
        mapping,
        "log_PTR",
        ["design"],
        models=("two-level",),
        progress=lambda *a: calls.append(a),
    )
    assert calls == [(1, 2), (2, 2)]


def test_a_specification_that_cannot_be_estimated_is_reported_not_raised():
    data, mapping = default_data()
    data = data.assign(design_copy=data["design"])
    curve = specification_curve(
        data, mapping, "log_PTR", ["design", "design_copy"], models=("two-level",)
    )
    table = curve.table
    both = table["design"] & table["design_copy"]
    assert table.loc[both, "error"].str.contains("collinear").all()
    assert table.loc[~both, "error"].isna().all()
    assert curve.n_failed == 1


def test_all_specifications_use_the_rows_complete_on_every_control():
    data, mapping = default_data()
    data = data.copy()
    data.loc[:9, "pd_share"] = np.nan
    curve = specification_curve(data, mapping, "log_PTR", ["pd_share"], models=("two-level",))
    assert (curve.table["k"] == 801).all()
    assert any("10 of 811" in note for note in curve.notes)


def test_estimators_a_model_does_not_offer_are_skipped_with_a_note():
    data, mapping = default_data()
    curve = specification_curve(data, mapping, "log_PTR", [], methods=("DL", "REML"))
    pairs = set(zip(curve.table["model"], curve.table["method"], strict=True))
    assert pairs == {("two-level", "DL"), ("two-level", "REML"), ("three-level", "REML")}
    assert any("DL" in note for note in curve.notes)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ptr_column": "no_such"}, "no column 'no_such'"),
        ({"controls": ["log_PTR"]}, "cannot also be a control"),
        ({"models": ("four-level",)}, "Unknown model"),
    ],
)
def test_bad_requests_raise_analysis_errors(kwargs, message):
    data, mapping = default_data()
    arguments = {"ptr_column": "log_PTR", "controls": ["design"], **kwargs}
    with pytest.raises(AnalysisError, match=message):
        specification_curve(data, mapping, **arguments)


def test_three_level_needs_a_study_column():
    data, mapping = default_data()
    with pytest.raises(AnalysisError, match="study column"):
        specification_curve(data, mapping.with_changes(study=None), "log_PTR", ["design"])


# -- the figure ----------------------------------------------------------------------------
def _traces(fig, role):
    return [trace for trace in fig.data if trace.meta and trace.meta.get("role") == role]


def test_figure_sorts_estimates_and_marks_the_choices():
    curve = default_curve()
    fig = specification_figure(curve)
    points = sorted(
        (x, y) for trace in _traces(fig, "estimates") for x, y in zip(trace.x, trace.y, strict=True)
    )
    ranks, estimates = zip(*points, strict=True)
    assert list(ranks) == list(range(1, 17))
    assert list(estimates) == sorted(curve.table["estimate"])
    choices = {trace.meta["choice"]: len(trace.x) for trace in _traces(fig, "choice")}
    assert choices == {"alliance_rater": 8, "design": 8, "pd_share": 8, "three-level model": 8}
    assert not _traces(fig, "current")


def test_figure_highlights_the_current_specification():
    curve = default_curve()
    label = curve.find(["design"], model="three-level", method="REML")
    fig = specification_figure(curve, current={"controls": ["design"], "model": "three-level"})
    (current,) = _traces(fig, "current")
    assert current.meta["specification"] == label
    assert current.y[0] == pytest.approx(curve.table.at[label, "estimate"])
    rank = int((curve.table["estimate"] < curve.table.at[label, "estimate"]).sum()) + 1
    assert current.x[0] == rank
    (marks,) = _traces(fig, "current choices")
    assert sorted(marks.y) == ["design", "three-level model"]
    with pytest.raises(AnalysisError, match="not one of"):
        specification_figure(curve, current={"controls": ["outcome_rater"]})


# -- words follow flags: tests the dashboard flags are never counted as significant ----------
def lopsided_ptr_data(n_studies: int = 12, per_study: int = 3, seed: int = 23) -> pd.DataFrame:
    """Seeded effect sizes nested in studies where PTR differs in only two studies, so that
    the CR2 test of the PTR slope rests on very few Satterthwaite df; a balanced control."""
    rng = np.random.default_rng(seed)
    study = np.repeat(np.arange(n_studies), per_study)
    log_ptr = np.where(study < 2, np.log([2.0, 12.0])[np.minimum(study, 1)], np.log(5.0))
    control = rng.normal(size=n_studies)[study]
    vi = rng.uniform(0.01, 0.03, size=study.size)
    yi = 0.3 - 0.05 * log_ptr + rng.normal(0, 0.1, n_studies)[study] + rng.normal(0, vi**0.5)
    return pd.DataFrame(
        {"study": study, "yi": yi, "vi": vi, "log_PTR": log_ptr, "control": control}
    )


def lopsided_curve(rows: pd.DataFrame, **choices):
    """The three-level curve of ``lopsided_ptr_data`` with one control."""
    columns = {"yi": "yi", "vi": "vi", "study": "study"}
    return specification_curve(
        rows, columns, "log_PTR", ["control"], models=("three-level",), **choices
    )


def test_a_robust_test_on_fewer_than_four_df_is_marked_and_never_counted():
    rows = lopsided_ptr_data()
    curve = lopsided_curve(rows, rhos=(0.6,), inferences=("model", "CR2"))
    robust_rows = curve.table[curve.table["inference"] == "CR2"]
    assert len(robust_rows) == 2
    for label, row in robust_rows.iterrows():
        moderators = ["log_PTR", *(["control"] if row["control"] else [])]
        fitted = ac.fit(rows, moderators=moderators, cluster="study", rho=0.6)
        df = fitted.robust().coefficients.loc["log_PTR", "df"]
        assert row["df"] == pytest.approx(df, rel=1e-6)
        assert (row["caution"] is not None) == (df < 4), label
    assert robust_rows["caution"].notna().any()  # the data were built for it
    model_rows = curve.table[curve.table["inference"] == "model"]
    assert model_rows["caution"].isna().all() and model_rows["df"].isna().all()
    # The share counts only the specifications whose test can be trusted.
    trusted = curve.table[curve.table["caution"].isna()]
    alpha = 1 - curve.level
    assert curve.n_cautioned == int(robust_rows["caution"].notna().sum())
    assert curve.share_significant == pytest.approx((trusted["pval"] < alpha).mean())
    text = curve.describe()
    assert f"The PTR test of {curve.n_cautioned} of 4 cannot be trusted" in text
    assert "fewer than 4 degrees of freedom" in text
    figure = specification_figure(curve)
    marked = [t for t in figure.data if t.name == "test not trustworthy (not counted)"]
    assert len(marked) == 1 and len(marked[0].x) == curve.n_cautioned
    counted_points = sum(
        len(t.x) for t in figure.data if t.meta and t.meta.get("significant") in (True, False)
    )
    assert counted_points == len(trusted)


def test_with_fewer_than_ten_studies_no_specification_is_called_significant():
    curve = lopsided_curve(lopsided_ptr_data(n_studies=8))
    assert curve.table["caution"].str.contains("only 8 studies").all()
    assert np.isnan(curve.share_significant) and curve.trusted.empty
    text = curve.describe()
    assert "significant at" not in text
    assert "no specification's test can be trusted" in text


@pytest.mark.parametrize("inference", ["model", "CR2"])
@pytest.mark.parametrize("controls", [(), ("control",)])
def test_the_current_specification_is_the_states_ptr_coefficient_with_its_flag(inference, controls):
    # The specification the Sensitivity page highlights (the sidebar's moderators, model, ρ and
    # inference) is the state's moderator model: the same PTR estimate, SE, df and p as the
    # Moderators page, and marked untrustworthy exactly when the state flags that coefficient.
    rows = lopsided_ptr_data()
    rows["PTR"] = np.exp(rows["log_PTR"])
    mapping = ColumnMapping(study="study", yi="yi", vi="vi", ptr="PTR", moderators=("control",))
    table = effect_size_table(rows, mapping)
    settings = AnalysisSettings(
        dataset="lopsided",
        model="three-level",
        moderators=("PTR", *controls),
        inference=inference,
        rho=0.6,
    )
    state = analysis_state(table, mapping, settings, table=table)
    coefficient = state.moderated.inference_table.loc["log_PTR"]
    curve = lopsided_curve(rows, rhos=(0.6,), inferences=(inference,))
    spec = curve.table[curve.table["control"] == bool(controls)].iloc[0]
    for column in ("estimate", "se", "pval"):
        assert spec[column] == pytest.approx(coefficient[column], rel=1e-6), column
    if inference == "CR2":
        assert spec["df"] == pytest.approx(coefficient["df"], rel=1e-6)
    flagged = state.moderated_flags.coefficient_caution("log_PTR")
    assert (spec["caution"] is None) == (flagged is None), (spec["caution"], flagged)
    # The data were built so that the robust test is flagged (df below 4) and the model-based
    # one, on 12 studies, is not: both sides of the equivalence are exercised.
    assert (flagged is not None) == (inference == "CR2")
