"""The state object: one build gives the pooled and the moderator model with their flags.

Expected values are counts read off the data (studies per level), closed forms (identical effect
sizes give a between-study variance of 0 under REML) or the definition of a flag (a df below 4);
the numbers of the models themselves are proven against metafor elsewhere, so here the state must
hold exactly the runs that ``run_analysis`` gives for the same choices.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.analyses.state import MIN_STUDIES_FOR_HETEROGENEITY, model_flags
from alliance_core.data.mapping import ColumnMapping


def _bundled(name: str, **settings):
    info = ac.datasets.dataset_info(name)
    rows = ac.load_dataset(name)
    return rows, info.mapping, ac.AnalysisSettings(dataset=name, **settings)


@pytest.fixture(scope="module")
def assink_cr2():
    rows, mapping, settings = _bundled(
        "assink2016", model="three-level", moderators=("deltype",), inference="CR2"
    )
    return rows, mapping, settings, ac.analysis_state(rows, mapping, settings)


def test_the_state_holds_the_runs_run_analysis_gives(assink_cr2):
    rows, mapping, settings, state = assink_cr2
    pooled = ac.run_analysis(rows, mapping, settings.with_changes(moderators=()))
    moderated = ac.run_analysis(rows, mapping, settings)
    np.testing.assert_allclose(state.pooled.result.beta, pooled.result.beta, rtol=1e-10)
    np.testing.assert_allclose(state.moderated.result.beta, moderated.result.beta, rtol=1e-10)
    assert state.pooled.result.p == 1 and state.moderated.result.p == 3
    assert state.model is state.moderated and state.flags is state.moderated_flags
    # Both under the chosen inference.
    assert state.pooled.robust is not None and state.moderated.robust is not None
    assert state.on_r_scale is False and state.transform is None


def test_a_level_observed_in_one_study_flags_the_contrasts_resting_on_it(assink_cr2):
    rows, _, _, state = assink_cr2
    studies_per_level = rows.groupby("deltype")["study"].nunique()
    single = set(studies_per_level.index[studies_per_level == 1])
    assert single == {"covert"}
    contrasts = {t for t in state.moderated.result.coefficients.index if t.startswith("deltype")}
    reference = (
        set(studies_per_level.index) - {t.removeprefix("deltype") for t in contrasts}
    ).pop()
    # A one-study reference level carries every contrast; otherwise only its own is flagged.
    expected = contrasts if reference in single else {f"deltype{level}" for level in single}
    flagged = {label for label, _, level in state.moderated_flags.one_study_levels}
    assert flagged == expected
    assert "single study" in state.moderated_flags.omnibus_caution()


def test_small_df_flags_exactly_the_terms_below_four(assink_cr2):
    _, _, _, state = assink_cr2
    df = state.moderated.robust.coefficients["df"]
    expected = {term for term in df.index if df[term] < 4}
    assert {term for term, _ in state.moderated_flags.small_df} == expected
    for term in df.index:
        caution = state.moderated_flags.coefficient_caution(term)
        assert (caution is not None and "degrees of freedom" in caution) == (term in expected)
    df2 = state.moderated.robust.QM_df[1]
    assert (state.moderated_flags.omnibus_df2 is not None) == (df2 < 4)


def test_no_moderators_means_one_model():
    rows, mapping, settings = _bundled("molloy2014", model="two-level", moderators=())
    state = ac.analysis_state(rows, mapping, settings)
    assert state.moderated is None and state.moderator_problem is None
    assert state.model is state.pooled
    assert [label for label, _, _ in state.models()] == ["pooled"]
    # 16 studies, model-based: nothing about the pooled test is flagged.
    assert state.pooled_flags.n_studies == len(rows) == 16
    assert state.pooled_flags.coefficient_caution("intrcpt") is None


def _tiny(n_studies: int, yi=None, group=None) -> tuple[pd.DataFrame, ColumnMapping]:
    rng = np.random.default_rng(19)
    frame = pd.DataFrame(
        {
            "study": [f"S{i}" for i in range(n_studies)],
            "yi": rng.normal(0.3, 0.1, n_studies) if yi is None else yi,
            "vi": np.full(n_studies, 0.01),
            "group": ["a"] * n_studies if group is None else group,
        }
    )
    mapping = ColumnMapping(study="study", yi="yi", vi="vi", moderators=("group",))
    return frame, mapping


def test_a_moderator_model_that_cannot_be_fitted_leaves_the_pooled_model_standing():
    # A constant moderator cannot be separated from the intercept (no fit can estimate it).
    rows, mapping = _tiny(6)
    settings = ac.AnalysisSettings(dataset="upload", model="two-level", moderators=("group",))
    state = ac.analysis_state(rows, mapping, settings)
    assert state.moderated is None and state.moderator_problem
    assert state.pooled.result.k == 6
    with pytest.raises(ac.AnalysisError, match="group"):
        _ = state.model
    assert "not fitted" in state.summary()


def test_identical_effects_put_tau2_on_its_boundary():
    # All yi equal: Q = 0 < k - 1, so the REML estimate of tau2 is 0 (closed form).
    rows, mapping = _tiny(8, yi=np.full(8, 0.2))
    state = ac.analysis_state(
        rows, mapping, ac.AnalysisSettings(dataset="upload", model="two-level", moderators=())
    )
    assert state.pooled.result.tau2 == pytest.approx(0.0, abs=1e-10)
    assert state.pooled_flags.boundary == ("tau2",)


@pytest.mark.parametrize("n", [2, 3])
def test_heterogeneity_statements_need_three_studies(n):
    rows, mapping = _tiny(n)
    state = ac.analysis_state(
        rows, mapping, ac.AnalysisSettings(dataset="upload", model="two-level", moderators=())
    )
    caution = state.pooled_flags.heterogeneity_caution()
    assert (caution is not None) == (n < MIN_STUDIES_FOR_HETEROGENEITY)
    if caution:
        assert f"only {n} studies" in caution


def test_fewer_than_ten_studies_flag_moderator_tests_and_every_robust_test():
    group = ["a", "a", "a", "b", "b", "b", "c", "c", "c"]
    rows, mapping = _tiny(9, group=group)
    model_based = ac.analysis_state(
        rows,
        mapping,
        ac.AnalysisSettings(dataset="upload", model="two-level", moderators=("group",)),
    )
    flags = model_based.moderated_flags
    assert flags.few_studies and flags.coefficient_caution("intrcpt") is None
    assert "9 studies" in flags.coefficient_caution("groupb")
    assert "9 studies" in flags.omnibus_caution()
    assert model_based.pooled_flags.coefficient_caution("intrcpt") is None
    robust = model_flags(
        ac.run_analysis(
            rows,
            mapping,
            ac.AnalysisSettings(
                dataset="upload", model="two-level", moderators=(), inference="CR2"
            ),
        )
    )
    assert "cluster-robust" in robust.coefficient_caution("intrcpt")


def test_the_state_is_exported_for_notebooks():
    assert ac.analysis_state is not None and "AnalysisState" in ac.__all__


def test_a_between_study_variance_the_data_cannot_identify_is_refused_by_name():
    # Two studies, and log PTR constant within each: the line through the two study averages
    # fits them exactly, so sigma2_study has a flat restricted likelihood (no estimate exists).
    rows, mapping, _ = _bundled(ac.DEFAULT_DATASET)
    settings = ac.AnalysisSettings(moderators=("PTR",), filters={"study": ["1", "2"]})
    state = ac.analysis_state(rows, mapping, settings)
    assert state.moderated is None
    assert "With 2 studies and 2 coefficients" in state.moderator_problem
    assert "log PTR" in state.moderator_problem
    assert state.pooled.result.n_studies == 2  # the pooled model stands
    # A third study identifies it: the model is fitted.
    three = ac.analysis_state(
        rows, mapping, settings.with_changes(filters={"study": ["1", "2", "3"]})
    )
    assert three.moderator_problem is None and three.moderated.result.p == 2
