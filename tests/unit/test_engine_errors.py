"""Bad input and impossible models raise AnalysisError with a message a user can act on."""

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    k = 12
    return pd.DataFrame(
        {
            "study": np.repeat(["a", "b", "c", "d"], 3),
            "yi": rng.normal(0.3, 0.2, k),
            "vi": rng.uniform(0.01, 0.05, k),
            "x": rng.normal(size=k),
            "rater": ["patient", "observer", "therapist"] * 4,
        }
    )


def test_constant_moderator_is_named(data):
    data["const"] = 2.0
    with pytest.raises(ac.AnalysisError, match="'const'.*same value"):
        ac.fit(data, moderators=["const"])


def test_single_level_moderator_is_named(data):
    data["only"] = "RCT"
    with pytest.raises(ac.AnalysisError, match="'only'.*single level"):
        ac.fit(data, moderators=["only"])


def test_collinear_moderator_is_named(data):
    data["x2"] = 2 * data["x"] + 1
    with pytest.raises(ac.AnalysisError, match="'x2'.*collinear"):
        ac.fit(data, moderators=["x", "x2"])


def test_non_positive_variance_names_row_and_column(data):
    data.loc[5, "vi"] = 0.0
    with pytest.raises(ac.AnalysisError, match="Row 5, column 'vi'"):
        ac.fit(data)


def test_infinite_effect_size_names_row(data):
    data.loc[2, "yi"] = np.inf
    with pytest.raises(ac.AnalysisError, match="Row 2, column 'yi'"):
        ac.fit(data)


def test_more_coefficients_than_effect_sizes(data):
    small = data.iloc[:3]
    with pytest.raises(ac.AnalysisError, match="more effect sizes than coefficients"):
        ac.fit(small, moderators=["x", "rater"])


def test_single_study_cannot_have_a_three_level_model(data):
    data["study"] = "same"
    with pytest.raises(ac.AnalysisError, match="single study"):
        ac.fit(data, cluster="study")


def test_one_effect_size_per_study_cannot_separate_the_levels(data):
    data["study"] = [f"s{i}" for i in range(len(data))]
    with pytest.raises(ac.AnalysisError, match="two-level model"):
        ac.fit(data, cluster="study")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"method": "XYZ"}, "Unknown estimator"),
        ({"method": "DL", "cluster": "study"}, "ML or REML"),
        ({"test": "knha", "cluster": "study"}, "test='t'"),
        ({"level": 95}, "between 0 and 1"),
        ({"moderators": ["nope"]}, "'nope' is not in the data"),
        ({"moderators": ["rater"], "reference": {"rater": "client"}}, "not a level of 'rater'"),
        ({"moderators": ["x"], "reference": {"x": 1}}, "numeric"),
    ],
)
def test_bad_settings(data, kwargs, needle):
    with pytest.raises(ac.AnalysisError, match=needle):
        ac.fit(data, **kwargs)


def test_prediction_with_an_unknown_level(data):
    res = ac.fit(data, moderators=["rater"])
    with pytest.raises(ac.AnalysisError, match="'client'"):
        res.predict({"rater": "client"})


def test_failure_to_converge_suggests_another_estimator(data, monkeypatch):
    from alliance_core.model import estimation

    original = estimation.maximise_likelihood

    def stingy(*args, **kwargs):
        kwargs["max_iter"] = 1
        kwargs["tol"] = 0.0
        return original(*args, **kwargs)

    monkeypatch.setattr(estimation, "maximise_likelihood", stingy)
    with pytest.raises(ac.AnalysisError, match="did not converge.*Try the ML estimator"):
        ac.fit(data, cluster="study", method="REML")
