"""Nothing clipped, nothing printed over something else: the forest plot on a phone-wide
viewport, and figure captions and the sidebar's dataset box on a desktop."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from alliance_core.data.datasets import dataset_info, list_datasets
from pages._ui.state import display_title
from tests.e2e.conftest import PAGE_TIMEOUT_MS, wait_for_app_ready

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1400, "height": 900}

# Bounding boxes of the visible forest plot's parts: the plotting area and, per text trace
# (labels, numbers), the box of each drawn text. Plotly tags nothing with our roles, so the
# text traces are found through the figure's data (gd.data[i].meta.role) and their DOM groups.
FOREST_BOXES = """() => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')]
    .filter(p => p.offsetParent !== null && p.data
            && p.data.some(t => t.meta && t.meta.role === 'label text'));
  if (plots.length !== 1) return {count: plots.length};
  const gd = plots[0];
  const plotArea = gd.querySelector('.nsewdrag').getBoundingClientRect();
  const texts = {};
  const groups = gd.querySelectorAll('.scatterlayer .trace');
  gd._fullData.forEach((trace, i) => {
    const role = trace.meta && trace.meta.role;
    if (!role || !role.endsWith('text')) return;
    const group = [...groups].find(g => g.__data__ && g.__data__[0] &&
                                        g.__data__[0].trace.index === trace.index);
    if (!group) return;
    texts[role] = [...group.querySelectorAll('.textpoint text')].map(t => {
      const b = t.getBoundingClientRect();
      return {left: b.left, right: b.right, top: b.top, bottom: b.bottom};
    }).filter(b => b.right > b.left);
  });
  return {count: 1, plotWidth: plotArea.width, plotLeft: plotArea.left, texts,
          viewport: window.innerWidth};
}"""


def _overlap(a: dict, b: dict) -> bool:
    return (
        min(a["right"], b["right"]) - max(a["left"], b["left"]) > 0.5
        and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > 0.5
    )


@pytest.fixture
def sized_page(browser, app_url: str, request) -> Iterator[object]:
    context = browser.new_context(viewport=request.param)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    tab = context.new_page()
    tab.js_errors = []
    tab.on("pageerror", lambda error: tab.js_errors.append(str(error)))
    try:
        yield tab
    finally:
        context.close()


def _open(page, url: str) -> None:
    page.goto(url)
    wait_for_app_ready(page, 90_000)


def _forest_boxes(page) -> dict:
    page.wait_for_function(f"({FOREST_BOXES})().count === 1", timeout=90_000)
    return page.evaluate(FOREST_BOXES)


@pytest.mark.parametrize("sized_page", [PHONE], indirect=True)
def test_forest_plot_on_a_phone_keeps_half_the_width_and_separate_text(sized_page, app_url):
    _open(sized_page, f"{app_url}/forest")
    boxes = _forest_boxes(sized_page)
    assert boxes["plotWidth"] >= 0.5 * boxes["viewport"], boxes["plotWidth"]
    texts = boxes["texts"]
    assert texts.get("label text") and texts.get("r text"), texts.keys()
    roles = list(texts)
    for i, role in enumerate(roles):
        for other in roles[i + 1 :]:
            clashes = [(a, b) for a in texts[role] for b in texts[other] if _overlap(a, b)]
            assert not clashes, f"{role} overlaps {other}: {clashes[:2]}"
    # Every text lies within the viewport: nothing printed off the screen's edge.
    for role, items in texts.items():
        assert all(b["left"] >= -0.5 and b["right"] <= boxes["viewport"] + 0.5 for b in items), role
    # The hidden wide figure draws without errors too.
    assert sized_page.js_errors == []


@pytest.mark.parametrize("sized_page", [DESKTOP], indirect=True)
def test_forest_plot_on_a_desktop_has_separate_columns(sized_page, app_url):
    _open(sized_page, f"{app_url}/forest")
    boxes = _forest_boxes(sized_page)
    texts = boxes["texts"]
    assert set(texts) >= {"label text", "r text", "weight text"}
    spans = {
        role: (min(b["left"] for b in items), max(b["right"] for b in items))
        for role, items in texts.items()
    }
    ordered = sorted(spans.values())
    for (_, right), (left, _) in zip(ordered, ordered[1:], strict=False):
        assert right <= left + 0.5, spans
    # The labels end before the plotting area begins.
    assert spans["label text"][1] <= boxes["plotLeft"] + 0.5
    assert sized_page.js_errors == []


# The page's own text (the sidebar, collapsed off-screen on a phone, has its own test).
CLIPPED = """() => [...document.querySelector('[data-testid="stMain"]').querySelectorAll(
    '[data-testid="stCaptionContainer"], [data-testid="stMarkdownContainer"] p,'
    + ' .js-plotly-plot .annotation-text, .js-plotly-plot .gtitle')]
  .filter(e => e.offsetParent !== null)
  .map(e => {
    const box = e.getBoundingClientRect();
    const svg = e.closest('.js-plotly-plot');
    const frame = svg ? svg.getBoundingClientRect() : null;
    const outside = frame ? (box.right > frame.right + 0.5 || box.left < frame.left - 0.5) : false;
    // scrollWidth means nothing for SVG text: there, only the figure's frame counts.
    const overflow = !(e instanceof SVGElement) && e.scrollWidth > e.clientWidth + 1;
    return {text: e.textContent.slice(0, 80), overflow, outside,
            box: [box.left, box.right], frame: frame ? [frame.left, frame.right] : null};
  })
  .filter(e => e.overflow || e.outside)"""


@pytest.mark.parametrize("sized_page", [DESKTOP, PHONE], indirect=True, ids=["desktop", "phone"])
@pytest.mark.parametrize("path", ["forest", "moderators", "funnel", "simulator"])
def test_captions_and_figure_titles_are_not_clipped(sized_page, app_url, path):
    _open(sized_page, f"{app_url}/{path}")
    # A plot drawn and visible (the forest page also holds a hidden one for the other width).
    sized_page.wait_for_function(
        "[...document.querySelectorAll('.js-plotly-plot')]"
        ".some(p => p.offsetParent !== null && p._fullLayout)",
        timeout=90_000,
    )
    sized_page.wait_for_timeout(500)  # plotly's second layout pass after the first paint
    clipped = sized_page.evaluate(CLIPPED)
    assert clipped == [], clipped


@pytest.mark.parametrize("sized_page", [DESKTOP], indirect=True)
@pytest.mark.parametrize("dataset", [info.name for info in list_datasets()])
def test_sidebar_dataset_box_shows_its_whole_text(sized_page, app_url, dataset):
    _open(sized_page, f"{app_url}/?ds={dataset}")
    box = sized_page.locator('[data-testid="stSidebar"]').get_by_role(
        "combobox", name="Dataset", exact=True
    )
    expect(box).to_have_value(re.compile(re.escape(display_title(dataset_info(dataset).title))))
    assert box.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), box.input_value()
    # The whole title is on the page, wrapped under the box when the box shows a short one.
    assert (
        sized_page.locator('[data-testid="stSidebar"]')
        .get_by_text(dataset_info(dataset).title, exact=True)
        .count()
        + int(box.input_value() == dataset_info(dataset).title)
        >= 1
    )
