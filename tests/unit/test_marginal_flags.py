"""Flags of the marginal means and of the PTR readout's change (analyses/marginal_flags): the
same reasons, in the same words, as ModelFlags gives a coefficient, and the wording of a
flagged change (reading.ptr_change) reads its interval neither way.

Expectations are read off the data and the robust fit (each level's studies, each mean's own
Satterthwaite df), not copied from the page."""

from __future__ import annotations

import re
import urllib.parse

import pytest

import alliance_core as ac
from alliance_core.analyses.marginal_flags import change_caution, mean_cautions
from alliance_core.data.datasets import dataset_info, load_dataset
from alliance_core.figures import ptr_slope_readout
from alliance_core.formatting import escape_markdown
from alliance_core.model.robust import MIN_RELIABLE_DF
from alliance_core.wording import reading
from pages._ui import means_tables, tables
from tests.app.one_story_states import settings_of

INTERACTION = "mod=PTR&mod=alliance_rater&mod=PTR:alliance_rater&inf=CR2"
EITHER_WAY = re.compile(r"compatible with no|no difference|significant|\bCI \S+ to \S+\) than")


def _state(query: str):
    """The state a share link's query describes, as the page builds it."""
    settings = settings_of(urllib.parse.parse_qs(query))
    info = dataset_info(settings.dataset)
    return ac.analysis_state(load_dataset(settings.dataset), info.mapping, settings)


@pytest.fixture(scope="module")
def assink_cr2():
    return _state("ds=assink2016&mod=deltype&inf=CR2")


@pytest.fixture(scope="module")
def eight_studies():
    # The reviewer's state: CALPAS in RCTs leaves 8 studies, log PTR the only moderator.
    query = "keep=alliance_measure:CALPAS&keep=design:RCT"
    return {"model": _state(query), "CR2": _state(query + "&inf=CR2")}


def test_means_from_one_study_or_on_df_below_4_are_flagged(assink_cr2):
    run, flags = assink_cr2.moderated, assink_cr2.moderated_flags
    means = run.result.marginal_means("deltype", robust=run.robust)
    rows = run.result.data
    studies = rows.groupby(rows["deltype"].astype(str))[run.mapping.study].nunique()
    cautions = mean_cautions(run, flags, means)
    for level, row in means.table.iterrows():
        single = studies[str(level)] == 1
        small = row["df"] < MIN_RELIABLE_DF
        assert (str(level) in cautions) == (single or small), (level, row["df"], cautions)
        if single:
            assert f"the level '{level}' of deltype comes from a single study" in cautions[level]
        if small:
            assert f"its robust test rests on {row['df']:.1f} degrees of freedom" in cautions[level]
    assert cautions  # the reviewer's case: covert (one study) and overt (df 2.7)
    shown = means_tables.marginal_means_table(means, on_r_scale=False, cautions=cautions)
    marks = dict(zip(shown.index, shown["Caution"], strict=True))
    assert {level for level, mark in marks.items() if mark == tables.FLAG_MARK} == set(cautions)


def test_means_of_a_trustworthy_model_carry_no_mark():
    current = _state("mod=alliance_rater&inf=CR2")
    run = current.moderated
    means = run.result.marginal_means("alliance_rater", robust=run.robust)
    assert (means.table["df"] >= MIN_RELIABLE_DF).all()
    assert mean_cautions(run, current.moderated_flags, means) == {}
    shown = means_tables.marginal_means_table(means, on_r_scale=True, cautions={})
    assert "Caution" not in shown.columns


@pytest.mark.parametrize("inference", ["model", "CR2"])
def test_a_change_on_a_flagged_slope_carries_the_slope_caution(eight_studies, inference):
    current = eight_studies[inference]
    run = current.moderated
    flags = current.flags_of(run)
    slope = flags.coefficient_caution(run.ptr_column)
    assert slope  # fewer than 10 studies (and under CR2 df below 4)
    band = run.band_inference()
    readout = ptr_slope_readout(run.result, ptr_column="PTR", from_ptr=1, to_ptr=10, band=band)
    caution = change_caution(run, flags, readout)
    # One term: the change is the slope's contrast, so its reasons are the slope's words.
    assert caution == slope
    text = reading.ptr_change(readout, caution)
    assert caution in text and "cannot be trusted" in text
    assert "Do not read it as showing an effect or as showing none" in text
    assert not EITHER_WAY.search(text), text
    # Without the caution the same change is read as compatible with no difference: the
    # caution is what removes that reading.
    assert "compatible with no difference" in reading.ptr_change(readout, None)
    shown = tables.readout_table([("profile", readout)], [caution])
    assert list(shown["Caution"]) == [tables.FLAG_MARK]


def test_the_robust_caption_names_each_profile_in_row_order_and_carries_the_caution():
    current = _state(INTERACTION)
    run = current.moderated
    res = run.result
    band = run.band_inference()
    levels = list(res.design.term("alliance_rater").levels)
    readouts = [
        (
            f"alliance_rater = {level}",
            ptr_slope_readout(
                res, "PTR", 1, 10, profile_values={"alliance_rater": level}, band=band
            ),
        )
        for level in levels
    ]
    caption = tables.readout_inference(readouts)
    # Row order, each df after its (escaped) profile name; not sorted by size.
    expected = "; ".join(f"{escape_markdown(name)}: {out.df:.1f}" for name, out in readouts)
    assert f"Satterthwaite df ({expected})" in caption
    flagged = tables.readout_inference(readouts[:1], ["a reason"])
    assert f"{readouts[0][1].df:.1f} {tables.FLAG_MARK}" in flagged
    assert "The change cannot be trusted: a reason." in flagged


def test_interaction_words_are_plain_text():
    current = _state(INTERACTION)
    run = current.moderated
    text = reading.ptr_effect(run.result, run.ptr_column, coefficients=run.inference_table)
    reference = run.result.design.term("alliance_rater").levels[0]
    # The page escapes a reading once; the reading itself holds no escapes.
    assert f"Studies with alliance_rater = {reference} in which" in text
    assert "\\" not in text
