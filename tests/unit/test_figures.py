"""Figure builders checked against the model they draw.

Every expected value is recomputed here from the fitted result (beta, vb, predict, weights) or
from the data by the textbook formula, never read off a previous run.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import alliance_core as ac
from alliance_core import figures
from alliance_core.analyses import subgroups
from alliance_core.analyses.subgroups import subgroup_fits

RATERS = ("patient", "observer", "therapist")


def simulate_sheet(seed: int = 7, n_studies: int = 36, ptr_slope: float = -0.012) -> pd.DataFrame:
    """A small coding sheet with a known PTR slope; 'other' raters only in studies 1 and 2."""
    rng = np.random.default_rng(seed)
    rows = []
    for study in range(1, n_studies + 1):
        n = int(rng.integers(20, 240))
        therapists = int(np.clip(round(n / np.exp(rng.normal(np.log(5), 1.0))), 1, n))
        ptr = n / therapists
        year = int(rng.integers(1980, 2020))
        design = str(rng.choice(["RCT", "other"]))
        shift = rng.normal(0.0, 0.08)
        for j in range(int(rng.integers(1, 5))):
            rater = "other" if study <= 2 and j == 0 else str(rng.choice(RATERS, p=[0.6, 0.2, 0.2]))
            z = 0.32 + ptr_slope * ptr + shift + rng.normal(0, 0.04)
            z += rng.normal(0.0, 1.0 / np.sqrt(n - 3))
            rows.append(
                {
                    "study": study,
                    "es_id": len(rows) + 1,
                    "label": f"Study {study:03d} ({year})",
                    "year": year,
                    "r": np.tanh(z),
                    "n": n,
                    "n_therapists": therapists,
                    "ptr": ptr,
                    "alliance_rater": rater,
                    "alliance_measure": str(rng.choice(["WAI", "CALPAS"])),
                    "design": design,
                }
            )
    sheet = pd.DataFrame(rows)
    # Shuffled, so that no figure may rely on a study's effect sizes being adjacent.
    return sheet.iloc[rng.permutation(len(sheet))].reset_index(drop=True)


@pytest.fixture(scope="module")
def dat() -> pd.DataFrame:
    d = ac.escalc(simulate_sheet(), r="r", n="n", measure="ZCOR")
    d["log_ptr"] = np.log(d["ptr"])
    return d


@pytest.fixture(scope="module")
def overall(dat):
    return ac.fit(dat, cluster="study")


@pytest.fixture(scope="module")
def ptr_model(dat):
    return ac.fit(
        dat,
        moderators=["ptr", "alliance_rater", "design"],
        reference={"alliance_rater": "patient", "design": "other"},
        cluster="study",
    )


@pytest.fixture(scope="module")
def log_model(dat):
    return ac.fit(dat, moderators=["log_ptr", "alliance_rater"], cluster="study")


def traces(fig, role, **meta):
    """Traces tagged with a role (and optional meta fields)."""
    found = []
    for trace in fig.data:
        tag = trace.meta if isinstance(trace.meta, dict) else {}
        if tag.get("role") == role and all(tag.get(k) == v for k, v in meta.items()):
            found.append(trace)
    return found


def one(fig, role, **meta):
    found = traces(fig, role, **meta)
    assert len(found) == 1, f"expected one '{role}' trace, found {len(found)}"
    return found[0]


def text_by_y(trace) -> dict[float, str]:
    return dict(zip(trace.y, trace.text, strict=True))


# -- PTR curve -------------------------------------------------------------------------------
def test_ptr_curve_and_bands_equal_predict_on_the_grid(ptr_model, dat):
    fig = figures.ptr_curve_figure(ptr_model, grid_points=50)
    grid = np.linspace(dat["ptr"].min(), dat["ptr"].max(), 50)
    expected = ptr_model.predict({"ptr": grid}, transform="r")  # others at typical values
    curve = one(fig, "curve")
    np.testing.assert_allclose(curve.x, grid)
    np.testing.assert_allclose(curve.y, expected["pred"])
    band = one(fig, "ci band")
    np.testing.assert_allclose(band.y, np.r_[expected["ci_ub"], expected["ci_lb"][::-1]])
    np.testing.assert_allclose(band.x, np.r_[grid, grid[::-1]])
    np.testing.assert_allclose(one(fig, "pi lower").y, expected["pi_lb"])
    np.testing.assert_allclose(one(fig, "pi upper").y, expected["pi_ub"])
    assert fig.layout.xaxis.title.text.startswith("Patients per therapist (PTR)")
    assert fig.layout.yaxis.title.text == "Alliance\u2013outcome correlation r"


def test_ptr_curve_without_prediction_band_draws_none(ptr_model):
    fig = figures.ptr_curve_figure(ptr_model, show_prediction_band=False)
    assert not traces(fig, "pi band") and not traces(fig, "pi lower")


def test_log_ptr_model_builds_the_grid_in_ptr_and_transforms_it(log_model, dat):
    fig = figures.ptr_curve_figure(log_model, scale="log", grid_points=40)
    grid = np.geomspace(dat["ptr"].min(), dat["ptr"].max(), 40)
    expected = log_model.predict({"log_ptr": np.log(grid)}, transform="r")
    curve = one(fig, "curve")
    np.testing.assert_allclose(curve.x, grid)
    np.testing.assert_allclose(curve.y, expected["pred"])
    assert fig.layout.xaxis.type == "log"
    # Bubbles sit at each effect size's PTR, with area proportional to its weight.
    bubbles = one(fig, "bubbles")
    np.testing.assert_allclose(bubbles.x, dat.loc[log_model.data.index, "ptr"], rtol=1e-12)
    np.testing.assert_allclose(bubbles.y, np.tanh(log_model.data["yi"]))
    np.testing.assert_allclose(bubbles.marker.size, log_model.weights)
    assert bubbles.marker.sizemode == "area"


def test_dashboard_style_column_names_are_found(dat):
    # The dashboard names its columns PTR and log_PTR.
    d = dat.assign(PTR=dat["ptr"], log_PTR=np.log(dat["ptr"]))
    res = ac.fit(d, moderators=["log_PTR"], cluster="study")
    coding = figures.ptr_coding(res)
    assert coding.model_columns == (("log_PTR", "log"),)
    np.testing.assert_allclose(coding.ptr, d["ptr"])


def test_colouring_splits_bubbles_by_level(ptr_model):
    fig = figures.ptr_curve_figure(ptr_model, color_by="alliance_rater")
    bubbles = traces(fig, "bubbles")
    levels = ptr_model.design.term("alliance_rater").levels
    assert [b.meta["level"] for b in bubbles] == list(levels)
    assert sum(len(b.x) for b in bubbles) == ptr_model.k


def test_profiles_use_their_values_and_hold_the_rest_at_typical(ptr_model, dat):
    profiles = [
        {"name": "Observer-rated, RCT", "values": {"alliance_rater": "observer", "design": "RCT"}},
        {"name": "Therapist-rated", "values": {"alliance_rater": "therapist"}},
    ]
    fig = figures.ptr_curve_figure(ptr_model, profiles=profiles, grid_points=30)
    grid = np.linspace(dat["ptr"].min(), dat["ptr"].max(), 30)
    typical = ptr_model.design.typical_values()
    assert typical["design"] == "other"
    for profile in profiles:
        newdata = pd.DataFrame({"ptr": grid}).assign(**{**typical, **profile["values"]})
        newdata["ptr"] = grid
        expected = ptr_model.predict(newdata, transform="r")
        curve = one(fig, "curve", profile=profile["name"])
        np.testing.assert_allclose(curve.y, expected["pred"])
        band = one(fig, "ci band", profile=profile["name"])
        np.testing.assert_allclose(band.y, np.r_[expected["ci_ub"], expected["ci_lb"][::-1]])
    # The figure says which moderator the second profile holds, and at what.
    caption = " ".join(a.text for a in fig.layout.annotations)
    assert "Therapist-rated: holds design = other (reference level)" in caption
    # Distinct colours per profile.
    colours = [one(fig, "curve", profile=p["name"]).line.color for p in profiles]
    assert len(set(colours)) == len(colours)


def test_default_curve_names_the_held_moderators(ptr_model):
    fig = figures.ptr_curve_figure(ptr_model)
    caption = " ".join(a.text for a in fig.layout.annotations)
    assert "alliance_rater = patient (reference level)" in caption
    assert "design = other (reference level)" in caption


def test_more_than_four_profiles_is_an_error(ptr_model):
    five = [{"name": f"p{i}", "values": {}} for i in range(5)]
    with pytest.raises(ac.AnalysisError, match="at most 4"):
        figures.ptr_curve_figure(ptr_model, profiles=five)


def test_profile_with_unknown_moderator_is_an_error(ptr_model):
    with pytest.raises(ac.AnalysisError, match="not a moderator"):
        figures.ptr_curve_figure(ptr_model, profiles=[{"name": "x", "values": {"pd": "yes"}}])


def test_ptr_not_in_model_is_an_error(overall, dat):
    with pytest.raises(ac.AnalysisError, match="PTR is not a moderator"):
        figures.ptr_curve_figure(overall)
    rater_only = ac.fit(dat, moderators=["alliance_rater"], cluster="study")
    with pytest.raises(ac.AnalysisError, match="PTR is not a moderator"):
        figures.ptr_slope_readout(rater_only)


# -- PTR slope readout -------------------------------------------------------------------------
def _x(res, ptr_value, rater, design):
    """Model row written out by hand: intercept, ptr, rater dummies, design dummy."""
    names = res.design.names
    x = np.zeros(len(names))
    x[names.index("intrcpt")] = 1.0
    x[names.index("ptr")] = ptr_value
    if rater != "patient":
        x[names.index(f"alliance_rater{rater}")] = 1.0
    if design != "other":
        x[names.index(f"design{design}")] = 1.0
    return x


def test_slope_readout_equals_the_contrast_computed_from_beta_and_vb(ptr_model):
    out = figures.ptr_slope_readout(ptr_model, profile_values={"alliance_rater": "observer"})
    x1 = _x(ptr_model, 1.0, "observer", "other")
    x10 = _x(ptr_model, 10.0, "observer", "other")
    c = x10 - x1
    estimate = c @ ptr_model.beta
    se = np.sqrt(c @ ptr_model.vb @ c)
    crit = stats.norm.ppf(0.975)
    assert out.difference_z == pytest.approx(estimate, rel=1e-12)
    assert out.difference_z_se == pytest.approx(se, rel=1e-12)
    assert out.difference_z_ci == pytest.approx((estimate - crit * se, estimate + crit * se))
    assert out.pval == pytest.approx(2 * stats.norm.sf(abs(estimate / se)))
    assert out.r_from == pytest.approx(np.tanh(x1 @ ptr_model.beta))
    assert out.r_to == pytest.approx(np.tanh(x10 @ ptr_model.beta))
    assert out.difference_r == pytest.approx(np.tanh(x10 @ ptr_model.beta) - out.r_from)
    assert out.held == {"design": "other"}


def test_slope_readout_sentence_reports_the_r_difference(ptr_model):
    out = figures.ptr_slope_readout(ptr_model)
    lo, hi = out.difference_r_ci
    # The simulated slope is clearly negative, so the interval lies below zero.
    assert out.difference_r < 0 and hi < 0
    assert out.sentence.startswith("In studies where each therapist sees 10 patients")
    assert f"is {abs(out.difference_r):.2f} lower (95% CI {abs(hi):.2f} to {abs(lo):.2f})" in (
        out.sentence
    )
    assert out.sentence.endswith("than where each therapist sees one patient.")
    # The r-scale interval is the z interval converted at the predicted correlations.
    ratio = out.difference_r / out.difference_z
    assert out.difference_r_ci == pytest.approx(tuple(ratio * v for v in out.difference_z_ci))


def test_slope_readout_on_log_ptr_with_t_test(dat):
    res = ac.fit(dat, moderators=["log_ptr"], cluster="study", test="t")
    out = figures.ptr_slope_readout(res, from_ptr=2, to_ptr=20)
    c = np.array([0.0, np.log(20) - np.log(2)])
    estimate, se = c @ res.beta, np.sqrt(c @ res.vb @ c)
    crit = stats.t.ppf(0.975, res.ddf)
    assert out.difference_z == pytest.approx(estimate)
    assert out.difference_z_ci == pytest.approx((estimate - crit * se, estimate + crit * se))
    assert out.pval == pytest.approx(2 * stats.t.sf(abs(estimate / se), res.ddf))


def test_slope_readout_says_when_the_data_allow_no_difference():
    flat = ac.escalc(simulate_sheet(seed=3, ptr_slope=0.0), r="r", n="n", measure="ZCOR")
    res = ac.fit(flat, moderators=["ptr"], cluster="study")
    out = figures.ptr_slope_readout(res)
    lo, hi = out.difference_z_ci
    assert lo < 0 < hi  # this seed's estimate is compatible with no PTR effect
    assert "compatible with no difference" in out.sentence


# -- forest plot -----------------------------------------------------------------------------
def _pooled_by_study(dat_rows: pd.DataFrame, study: str = "study") -> pd.DataFrame:
    w = 1.0 / dat_rows["vi"]
    g = dat_rows.assign(w=w, wy=w * dat_rows["yi"]).groupby(study)
    return pd.DataFrame({"yi": g["wy"].sum() / g["w"].sum(), "vi": 1.0 / g["w"].sum()})


def test_forest_diamond_and_prediction_interval_equal_the_pooled_estimate(overall):
    fig = figures.forest_figure(overall)
    pred = overall.predict(transform="r").iloc[0]
    diamond = one(fig, "diamond")
    lo, est, hi = diamond.x[0], diamond.x[1], diamond.x[2]
    assert (lo, est, hi) == pytest.approx((pred["ci_lb"], pred["pred"], pred["ci_ub"]))
    assert max(diamond.x) == pytest.approx(pred["ci_ub"])
    assert min(diamond.x) == pytest.approx(pred["ci_lb"])
    pi = one(fig, "prediction interval")
    assert tuple(pi.x) == pytest.approx((pred["pi_lb"], pred["pi_ub"]))
    r_text = text_by_y(one(fig, "r text"))
    assert r_text[diamond.y[0]] == (
        f"{pred['pred']:.2f} [{pred['ci_lb']:.2f}, {pred['ci_ub']:.2f}]".replace("-", "\u2212")
    )


def test_forest_rows_are_studies_pooled_by_inverse_variance(overall, dat):
    fig = figures.forest_figure(overall, sort_by=None)
    points = one(fig, "studies")
    assert len(points.x) == overall.n_studies
    pooled = _pooled_by_study(overall.data)
    expected = np.tanh(pooled.loc[overall.data["study"].unique(), "yi"])  # data order
    np.testing.assert_allclose(points.x, expected)
    assert "treated as independent" in points.hovertext[0]
    assert "Therapists:" in points.hovertext[0] and "Alliance rater:" in points.hovertext[0]


def test_forest_weights_sum_to_100_and_equal_the_study_sums(overall):
    fig = figures.forest_figure(overall, sort_by=None)
    points = one(fig, "studies")
    weights = text_by_y(one(fig, "weight text"))
    shown = np.array([float(weights[y].rstrip("%")) for y in points.y])
    assert shown.sum() == pytest.approx(100.0, abs=0.005 * len(shown))
    by_study = overall.weights.groupby(overall.data["study"], sort=False).sum()
    np.testing.assert_allclose(shown, by_study.to_numpy(), atol=0.005 + 1e-9)


@pytest.mark.parametrize(
    ("sort_by", "key", "descending_precision"),
    [("effect", "yi", False), ("precision", "vi", False), ("year", "year", False)],
)
def test_forest_sort_orders(overall, sort_by, key, descending_precision):
    fig = figures.forest_figure(overall, sort_by=sort_by)
    points = one(fig, "studies")
    pooled = _pooled_by_study(overall.data)
    pooled["year"] = overall.data.groupby("study")["year"].first()
    # Rows from top (largest y) to bottom.
    order = np.argsort(-np.asarray(points.y))
    labels = np.asarray(points.hovertext)[order]
    studies = [int(re.search(r"Study (\d+)", h).group(1)) for h in labels]
    values = pooled.loc[studies, key].to_numpy()
    assert np.all(np.diff(values) >= 0), f"{sort_by}: rows not in ascending {key}"


def test_forest_sorted_by_ptr_shows_ptr(overall):
    fig = figures.forest_figure(overall, sort_by="ptr")
    labels = [t for t in one(fig, "label text").text if "PTR" in t]
    ptrs = [float(t.rsplit("PTR ", 1)[1]) for t in labels]
    assert len(ptrs) == overall.n_studies and ptrs == sorted(ptrs)


def test_forest_all_effect_sizes_has_k_rows_grouped_by_study(overall):
    fig = figures.forest_figure(overall, show_all_effect_sizes=True, sort_by="effect")
    points = one(fig, "effect sizes")
    assert len(points.x) == overall.k
    order = np.argsort(-np.asarray(points.y))
    studies = [re.search(r"Study (\d+)", h).group(1) for h in np.asarray(points.hovertext)[order]]
    # Each study's effect sizes are adjacent: the study sequence changes once per study.
    changes = sum(a != b for a, b in zip(studies, studies[1:], strict=False))
    assert changes == overall.n_studies - 1
    weights = text_by_y(one(fig, "weight text"))
    assert sum(float(weights[y].rstrip("%")) for y in points.y) == pytest.approx(
        100, abs=0.01 * overall.k
    )


def test_forest_two_level_has_one_row_per_effect_size(dat):
    res = ac.fit(dat.groupby("study").head(1))
    fig = figures.forest_figure(res, sort_by="effect")
    points = one(fig, "studies")
    assert len(points.x) == res.k
    np.testing.assert_allclose(np.sort(points.x), np.sort(np.tanh(res.data["yi"])))


def test_forest_grows_with_rows(dat):
    small = figures.forest_figure(ac.fit(dat[dat["study"] <= 6], cluster="study"))
    large = figures.forest_figure(ac.fit(dat, cluster="study"))
    studies = dat["study"].nunique() - dat.loc[dat["study"] <= 6, "study"].nunique()
    assert large.layout.height - small.layout.height == figures.ROW_HEIGHT * studies


def test_forest_meta_regression_diamond_is_the_typical_prediction(ptr_model):
    fig = figures.forest_figure(ptr_model)
    pred = ptr_model.predict(transform="r").iloc[0]
    diamond = one(fig, "diamond")
    assert diamond.x[1] == pytest.approx(pred["pred"])
    # ptr is numeric, alliance_rater and design categorical: means and reference levels.
    labels = one(fig, "label text").text
    assert "<b>Prediction at means and reference levels</b>" in labels
    caption = " ".join(a.text for a in fig.layout.annotations)
    assert "alliance_rater = patient (reference level)" in caption
    assert f"ptr = {ptr_model.design.term('ptr').mean:.3g} (mean)" in caption
    # The diamond's description others caption the figure with is the note's own.
    described = fig.layout.meta["diamond"]
    assert f"Meta-regression: the diamond is {described}." in fig.layout.meta["notes"]
    assert "not a pooled estimate" in described
    assert fig.layout.meta["prediction_interval"] is True


@pytest.mark.parametrize(
    ("moderators", "label"),
    [
        (["alliance_rater"], "Prediction at the reference level"),
        (["alliance_rater", "design"], "Prediction at the reference levels"),
        (["ptr"], "Prediction at the moderator mean"),
    ],
)
def test_forest_prediction_row_is_labelled_by_its_moderator_values(dat, moderators, label):
    """A categorical moderator's diamond is its reference level, not 'typical values'."""
    res = ac.fit(dat, moderators=moderators, cluster="study")
    fig = figures.forest_figure(res)
    labels = one(fig, "label text").text
    assert f"<b>{label}</b>" in labels
    assert not any("typical moderator values" in text for text in labels)
    for column, value in res.design.typical_values().items():
        if res.design.term(column).kind == "categorical":
            assert f"{column} = {value} (reference level)" in fig.layout.meta["diamond"]


def test_forest_pooled_diamond_is_described_as_the_pooled_estimate(overall):
    fig = figures.forest_figure(overall)
    assert (
        fig.layout.meta["diamond"] == f"the pooled estimate (three-level model, {overall.method})"
    )
    equal = figures.forest_figure(ac.fit(overall.data, method="EE"))
    assert equal.layout.meta["prediction_interval"] is False  # EE draws no prediction bar


def test_forest_pools_study_rows_on_the_scale_the_effects_are_analysed_on(overall):
    """Fisher's z is named only for correlations; other effect sizes (here standardised mean
    differences) are averaged as analysed, and the note and hovers say so."""
    smd = ac.load_dataset("assink2016")
    res = ac.fit(smd, yi="yi", vi="vi", cluster="study")
    as_analysed = figures.forest_figure(res, transform=None)
    notes = " ".join(as_analysed.layout.meta["notes"])
    hovers = " ".join(one(as_analysed, "studies").hovertext)
    assert "Fisher" not in notes and "Fisher" not in hovers
    assert "inverse-variance weighting on the effect-size scale as analysed (yi)" in notes
    assert "inverse-variance mean on the effect-size scale as analysed (yi)" in hovers
    for transform in ("r", "z"):
        on_correlations = figures.forest_figure(overall, transform=transform)
        notes = " ".join(on_correlations.layout.meta["notes"])
        assert "inverse-variance weighting on Fisher's z" in notes


def test_forest_subgroup_diamonds_come_from_separate_fits(overall, dat):
    fig = figures.forest_figure(overall, subgroup="alliance_rater")
    diamonds = traces(fig, "subgroup diamond")
    fits = {f.level: f for f in subgroup_fits(overall, "alliance_rater")}
    assert {d.name for d in diamonds} == {lvl for lvl, f in fits.items() if f.fitted}
    for diamond in diamonds:
        rows = dat[dat["alliance_rater"] == diamond.name]
        direct = ac.fit(rows, cluster="study").predict(transform="r").iloc[0]
        assert diamond.x[1] == pytest.approx(direct["pred"], rel=1e-6)
        assert diamond.x[0] == pytest.approx(direct["ci_lb"], rel=1e-6)
    # 'other' occurs in two studies only: skipped, and the figure says so.
    assert not fits["other"].fitted
    caption = " ".join(a.text for a in fig.layout.annotations).replace("<br>", " ")
    assert "alliance_rater = other: not estimated (2 studies" in caption


def test_forest_reads_columns_through_a_mapping(dat):
    renamed = dat.rename(columns={"n": "patients", "label": "citation"})
    res = ac.fit(renamed, cluster="study")
    fig = figures.forest_figure(res, columns={"n": "patients", "label": "citation"}, sort_by=None)
    first = renamed[renamed["study"] == renamed["study"].iloc[0]].iloc[0]
    hover = one(fig, "studies").hovertext[0]
    assert hover.startswith(f"<b>{first['citation']}</b>")
    assert f"Patients: {first['patients']}" in hover


def test_forest_scales(overall):
    on_z = figures.forest_figure(overall, transform="z")
    assert one(on_z, "diamond").x[1] == pytest.approx(overall.beta[0])
    assert on_z.layout.xaxis.title.text.startswith("Fisher's z")
    as_analysed = figures.forest_figure(overall, transform=None)
    assert as_analysed.layout.xaxis.title.text.startswith("Effect size")


def test_forest_labels_and_numbers_are_text_traces_not_ticks(overall):
    """811 array ticks took plotly over a minute to lay out; text traces draw in one pass."""
    fig = figures.forest_figure(overall, show_all_effect_sizes=True)
    assert fig.layout.yaxis.tickvals is None and fig.layout.yaxis.showticklabels is False
    labels = text_by_y(one(fig, "label text"))
    points = one(fig, "effect sizes")
    assert len(points.y) == overall.k and all(y in labels for y in points.y)


def test_forest_wide_layout_keeps_columns_apart(overall):
    fig = figures.forest_figure(overall, layout="wide")
    domains = sorted(
        tuple(fig.layout[name].domain) for name in ("xaxis", "xaxis2", "xaxis3", "xaxis4")
    )
    for (_, right), (left, _) in zip(domains, domains[1:], strict=False):
        assert right <= left + 1e-12, "text columns and plot must not share width"
    assert fig.layout.xaxis.domain[1] - fig.layout.xaxis.domain[0] >= 0.4


def test_forest_compact_layout_puts_text_above_each_row(overall):
    wide = figures.forest_figure(overall, layout="wide", sort_by=None)
    fig = figures.forest_figure(overall, layout="compact", sort_by=None)
    assert tuple(fig.layout.xaxis.domain) == (0.0, 1.0)  # the plot has the whole width
    points = one(fig, "studies")
    labels, numbers = one(fig, "label text"), one(fig, "r text")
    # Every row's label and numbers sit on a line of their own, above the row's square.
    row_lines = set(np.round(np.asarray(points.y) + 0.42, 9))
    assert row_lines <= set(np.round(labels.y, 9)) and row_lines <= set(np.round(numbers.y, 9))
    assert (
        min(labels.x) == fig.layout.xaxis.range[0] and max(numbers.x) == fig.layout.xaxis.range[1]
    )
    # Compact numbers hold both of the wide layout's number columns.
    wide_r, wide_w = text_by_y(one(wide, "r text")), text_by_y(one(wide, "weight text"))
    first = points.y[0]
    assert text_by_y(numbers)[first + 0.42] == f"{wide_r[first]} \u00b7 {wide_w[first]}"
    with pytest.raises(ac.AnalysisError, match="layout"):
        figures.forest_figure(overall, layout="phone")


def test_figures_escape_user_text(dat):
    hostile = dat.assign(
        label="<b>Smith</b> & <img src=x>",
        alliance_rater=dat["alliance_rater"].replace("patient", "<i>pt</i>"),
    )
    res = ac.fit(hostile, moderators=["ptr", "alliance_rater"], cluster="study")
    forest = figures.forest_figure(res, layout="compact")
    texts = list(one(forest, "label text").text) + list(one(forest, "studies").hovertext)
    texts += [a.text for a in forest.layout.annotations]
    curve = figures.ptr_curve_figure(
        res,
        color_by="alliance_rater",
        profiles=[{"name": "%{y} <script>", "values": {"alliance_rater": "observer"}}],
    )
    texts += [t.name or "" for t in curve.data] + [str(t.hovertext) for t in curve.data]
    for text in texts:
        assert "<img" not in text and "<i>" not in text and "<script>" not in text, text
    assert any("&lt;img src=x&gt;" in t for t in texts)
    assert all("%{y}" not in (t.hovertemplate or "") for t in curve.data)


def test_forest_rejects_an_unknown_sort(overall):
    with pytest.raises(ac.AnalysisError, match="unknown sort"):
        figures.forest_figure(overall, sort_by="weight")


# -- funnel plot -----------------------------------------------------------------------------
def test_funnel_points_contours_and_pooled_line(dat):
    res = ac.fit(dat.groupby("study").head(1))
    fig = figures.funnel_figure(res, scale="z")
    points = one(fig, "effect sizes")
    assert len(points.x) == res.k
    np.testing.assert_allclose(points.x, res.data["yi"])
    np.testing.assert_allclose(points.y, np.sqrt(res.data["vi"]))
    for alpha in (0.10, 0.05, 0.01):
        boundary = one(fig, "contour boundary", alpha=alpha)
        x = np.array(boundary.x, dtype=float)
        y = np.array(boundary.y, dtype=float)
        ok = np.isfinite(x)
        z = stats.norm.ppf(1 - alpha / 2)
        np.testing.assert_allclose(np.abs(x[ok]), z * y[ok], atol=1e-12)
        assert (x[ok] < 0).any() and (x[ok] > 0).any()  # both sides of zero
    line = one(fig, "pooled line")
    assert tuple(line.x) == pytest.approx((res.beta[0], res.beta[0]))
    pseudo = one(fig, "pseudo funnel")
    x, y = np.array(pseudo.x, float), np.array(pseudo.y, float)
    ok = np.isfinite(x)
    np.testing.assert_allclose(np.abs(x[ok] - res.beta[0]), stats.norm.ppf(0.975) * y[ok])
    assert fig.layout.yaxis.range[1] == 0.0 and fig.layout.yaxis.range[0] > 0  # 0 at the top
    names = [t.name for t in traces(fig, "contour region")]
    assert names == [".05 < p < .10", ".01 < p < .05", "p < .01"]


def test_funnel_on_r_scale_transforms_effects_and_boundaries(overall):
    fig = figures.funnel_figure(overall, scale="r", color_by_study=True)
    points = one(fig, "effect sizes")
    assert len(points.x) == overall.k
    np.testing.assert_allclose(points.x, np.tanh(overall.data["yi"]))
    boundary = one(fig, "contour boundary", alpha=0.05)
    x, y = np.array(boundary.x, float), np.array(boundary.y, float)
    ok = np.isfinite(x)
    np.testing.assert_allclose(np.abs(x[ok]), np.tanh(stats.norm.ppf(0.975) * y[ok]))
    assert one(fig, "pooled line").x[0] == pytest.approx(np.tanh(overall.beta[0]))
    caption = " ".join(a.text for a in fig.layout.annotations).replace("<br>", " ")
    assert "not independent" in caption
    assert len(set(points.marker.color)) > 1  # coloured by study


def test_funnel_of_a_meta_regression_shows_residuals(ptr_model):
    fig = figures.funnel_figure(ptr_model)
    fitted = ptr_model.design.matrix(ptr_model.data) @ ptr_model.beta
    points = one(fig, "effect sizes")
    np.testing.assert_allclose(points.x, ptr_model.data["yi"] - fitted)
    assert one(fig, "pooled line").x[0] == 0.0
    assert fig.layout.xaxis.title.text.startswith("Residual")


def test_funnel_overlay_hooks(overall):
    imputed = pd.DataFrame({"yi": [0.05, 0.1, 0.12], "vi": [0.02, 0.03, 0.01]})
    fig = figures.funnel_figure(
        overall,
        scale="z",
        egger_line={"intercept": 0.1, "slope": 2.0},
        imputed=imputed,
        adjusted_estimate=0.2,
    )
    open_points = one(fig, "imputed")
    assert len(open_points.x) == 3 and open_points.marker.symbol == "circle-open"
    np.testing.assert_allclose(open_points.y, np.sqrt(imputed["vi"]))
    egger = one(fig, "egger line")
    np.testing.assert_allclose(egger.x, 0.1 + 2.0 * np.asarray(egger.y))
    assert one(fig, "adjusted estimate").x[0] == pytest.approx(0.2)


# -- export and look ---------------------------------------------------------------------------
def test_html_export_is_self_contained(overall):
    page = figures.export_figure(figures.funnel_figure(overall), "html").decode()
    assert page.lstrip().lower().startswith(("<html", "<!doctype html>"))
    assert not re.search(r"<script[^>]+src=", page)  # nothing fetched from the network
    assert len(page) > 1_000_000  # plotly.js is embedded


def test_image_export_without_a_browser_says_what_is_needed(overall, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    with pytest.raises(ac.AnalysisError, match="needs Chromium"):
        figures.export_figure(figures.funnel_figure(overall), "png")


def test_unknown_export_format_is_an_error(overall):
    with pytest.raises(ac.AnalysisError, match="choose svg, png or html"):
        figures.export_figure(figures.funnel_figure(overall), "gif")


def test_figures_are_theme_neutral(overall, ptr_model):
    for fig in (
        figures.forest_figure(overall),
        figures.funnel_figure(overall),
        figures.ptr_curve_figure(ptr_model),
    ):
        assert fig.layout.paper_bgcolor == "rgba(0,0,0,0)"
        assert fig.layout.plot_bgcolor == "rgba(0,0,0,0)"
        assert fig.layout.font.color is None  # the active (light or dark) theme decides


FIGURE_MODULES = [*sorted(Path(figures.__file__).parent.glob("*.py")), Path(subgroups.__file__)]


@pytest.mark.parametrize("path", FIGURE_MODULES, ids=lambda p: p.name)
def test_figure_modules_never_import_streamlit(path):
    tree = ast.parse(path.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert "streamlit" not in imported
