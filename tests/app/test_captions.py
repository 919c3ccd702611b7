"""Captions and headers say what the data and the engine did: the scale the effect sizes are on
(Fisher's z only for correlations), and the inference the tables use (CR2: t on Satterthwaite
df, not the model-based test setting). Expected words are derived from the state the page's
link names (its dataset's measure, its fitted run's robust inference), not copied from a page.
"""

from __future__ import annotations

import pytest

import alliance_core as ac
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, load_dataset
from alliance_core.wording.reading import effect_words
from pages._ui.state import default_settings
from tests.app.conftest import assert_ran_cleanly, new_app, unescaped


def _page(query: dict[str, str], page: str):
    at = new_app()
    at.query_params.update(query)
    at.run()
    assert_ran_cleanly(at)
    at.switch_page(page).run()
    assert_ran_cleanly(at)
    return at


def _state(query: dict[str, str]):
    name = query.get("ds", DEFAULT_DATASET)
    info = dataset_info(name)
    settings = AnalysisSettings.from_query(
        {key: [value] for key, value in query.items()},
        default=default_settings(name, info.mapping),
    )
    return info, ac.analysis_state(load_dataset(name), info.mapping, settings)


def _header(at) -> str:
    """The settings line under the page title: the second line of the header's markdown, the
    page's first with a line break after the (possibly badged) bold title."""
    found = [unescaped(m.value) for m in at.markdown if "**  \n" in m.value]
    return found[0].split("\n", 1)[1]


@pytest.mark.parametrize("dataset", ["assink2016", "konstantopoulos2011", DEFAULT_DATASET])
def test_forest_pooling_note_names_fishers_z_only_for_correlations(dataset):
    info, _ = _state({"ds": dataset})
    at = _page({"ds": dataset}, "pages/forest.py")
    notes = [unescaped(c.value) for c in at.caption if "pools its effect sizes" in c.value]
    assert notes, [c.value for c in at.caption]
    for text in notes:
        if info.mapping.on_fisher_z:
            assert "inverse-variance weighting on Fisher's z" in text
        else:
            assert "Fisher" not in text
            assert "inverse-variance weighting on the effect-size scale as analysed (yi)" in text


@pytest.mark.parametrize(
    "query",
    [
        {"inf": "CR2"},
        {"ds": "assink2016", "mod": "deltype", "inf": "CR2"},
        {"ds": "assink2016"},
    ],
)
@pytest.mark.parametrize("page", ["pages/overview.py", "pages/forest.py", "pages/methods.py"])
def test_page_header_names_the_inference_the_tables_use(query, page):
    _, state = _state(query)
    run = state.model if state.moderated is not None else state.pooled
    header = _header(_page(query, page))
    if run.robust is not None:
        # The tables' tests are t on Satterthwaite df; the z/t setting is not used.
        assert set(run.inference_table["df"].notna()) == {True}
        assert "CR2 · t on Satterthwaite df" in header
        assert "z tests" not in header and "t tests" not in header
    else:
        assert f"{run.settings.test} tests" in header
        assert "CR2" not in header


@pytest.mark.parametrize("dataset", ["assink2016", DEFAULT_DATASET])
def test_methods_page_describes_the_effect_size_measure_of_the_data(dataset):
    info, _ = _state({"ds": dataset})
    at = _page({"ds": dataset}, "pages/methods.py")
    first = at.subheader[0].value
    text = " ".join(unescaped(m.value) for m in at.markdown)
    if info.mapping.on_fisher_z:
        assert first == "Effect sizes: Fisher's z"
        assert "transformed back to r" in text
    else:
        words = effect_words(info.measure)
        assert first == f"Effect sizes: {words.noun}s as given"
        assert f"{words.noun}s ({words.symbol})" in text
        assert "transformed back to r" not in text
        assert "Fisher's z" not in first
