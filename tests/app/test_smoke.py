"""app.py and every page run under AppTest without raising."""

from __future__ import annotations

from alliance_core.data.datasets import DEFAULT_DATASET, list_datasets
from alliance_core.formatting import escape_markdown
from pages._ui.state import display_title


def test_app_runs_and_offers_the_dataset_choice(app_test, ran_cleanly):
    at = app_test.run()

    ran_cleanly(at)
    choices = [box for box in at.sidebar.selectbox if box.label == "Dataset"]
    assert len(choices) == 1, "the sidebar should hold one selectbox labelled 'Dataset'"
    dataset = choices[0]
    assert len(dataset.options) == len(list_datasets())
    default = next(info for info in list_datasets() if info.name == DEFAULT_DATASET)
    shown = dataset.options[dataset.index]
    assert shown == display_title(default.title)
    # A title the box shortens is shown whole under it.
    assert any(c.value == escape_markdown(default.title) for c in at.sidebar.caption)


def test_every_page_runs(open_page, ran_cleanly, page_path):
    at = open_page(page_path)

    ran_cleanly(at)
