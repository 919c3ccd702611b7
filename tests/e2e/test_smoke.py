"""The served dashboard loads in a real browser and offers the dataset choice."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from alliance_core.data.datasets import DEFAULT_DATASET, list_datasets
from pages._ui.state import display_title

pytestmark = pytest.mark.e2e


def test_app_loads_without_exception(page):
    expect(page.locator('[data-testid="stMain"]')).to_be_visible()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.js_errors == []


def test_sidebar_shows_dataset_choice_with_default(page):
    # st.selectbox renders as a combobox named by its label; its input holds the text
    # of the selected option. expect() retries until the widget has been painted.
    choice = page.locator('[data-testid="stSidebar"]').get_by_role(
        "combobox", name="Dataset", exact=True
    )
    expect(choice).to_have_count(1)
    default = next(info for info in list_datasets() if info.name == DEFAULT_DATASET)
    expect(choice).to_have_value(re.compile(re.escape(display_title(default.title))))
