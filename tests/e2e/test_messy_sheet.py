"""The messy coding sheet in Chromium (issue 20): level merges and missing codes named on the
Data page once the moderators are chosen, and a reload of the tab keeps the upload."""

from __future__ import annotations

import pytest

from tests.coding_sheets import sheet_bytes, twin_sheets
from tests.e2e.conftest import PAGE_TIMEOUT_MS, rerun_and_wait, wait_for_app_ready

pytestmark = pytest.mark.e2e


def main(page):
    return page.locator('[data-testid="stMain"]')


def shows(page, text: str) -> None:
    page.get_by_text(text).first.wait_for(timeout=PAGE_TIMEOUT_MS)


def test_merges_codes_and_forms_are_named_and_a_reload_keeps_the_upload(page, tmp_path):
    _, messy = twin_sheets()
    path = tmp_path / "messy sheet.csv"
    path.write_bytes(sheet_bytes(messy))
    sidebar = page.locator('[data-testid="stSidebar"]')
    rerun_and_wait(page, lambda: sidebar.get_by_role("link", name="Data").click())
    uploader = main(page).locator('[data-testid="stFileUploaderDropzoneInput"]')
    rerun_and_wait(page, lambda: uploader.set_input_files(str(path)))

    shows(page, "'n.r.' in")
    shows(page, "Fisher's z and its standard error in")
    shows(page, "kept on this server until")
    # Choose the moderators on the Data page: the merges are then named.
    box = main(page).get_by_role(
        "combobox", name="Moderator columns (offered in the sidebar)", exact=True
    )
    for column in ("Rater", "Design"):

        def pick(column=column) -> None:
            # Typing opens the list reliably, also when the box already has the focus.
            box.click()
            box.press_sequentially(column)
            page.get_by_role("option", name=column, exact=True).click()
            page.keyboard.press("Escape")

        rerun_and_wait(page, pick)
    shows(page, "In 'Design': 'rct' read as 'RCT'")
    shows(page, "read as 'patient'")

    assert "upload=" in page.url
    page.reload()
    wait_for_app_ready(page)
    assert sidebar.get_by_role("radio", name="Your upload").is_checked()
    shows(page, "messy sheet.csv")
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.js_errors == []
