"""Hostile input held: user text shown as text, odd files and data answered with messages.

Every piece of user-controlled text (link parameters, settings-file values, uploaded file
names, column names, category levels, labels) must reach the page as literal characters:
never a Markdown link or image, a Streamlit directive, maths, an autolink or HTML.
"""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from streamlit.testing.v1 import AppTest

from alliance_core.data.mapping import ColumnMapping
from alliance_core.formatting import escape_markdown
from pages._ui import render, session
from pages._ui.tables import fmt_interval
from tests.app.conftest import chart_specs, exception_messages, new_app
from tests.coding_sheets import ROWS, coding_sheet

PAYLOADS = [
    "[Log in again here](https://evil.example/login)",
    "![](http://evil.example/x.png)",
    "<img src=x onerror=alert(1)>",
    ":red[x]",
    "http://evil.example",
]
# What a rendered body must never contain unescaped.
DANGEROUS = [
    re.compile(r"evil\.example"),  # escaped, the dot is "\."
    re.compile(r"(?<!\\)<img", re.IGNORECASE),
    re.compile(r"(?<!\\)<a\s", re.IGNORECASE),
    re.compile(r"!\["),
    re.compile(r"(?<!\\)\]\("),
    re.compile(r"(?<!\\):red(?<!\\)\["),
    # GFM links bare URLs after resolving escapes: the scheme must be broken by a word joiner.
    re.compile(r"(https?|www)\\?[:.]", re.IGNORECASE),
]


def rendered_texts(at: AppTest) -> list[str]:
    """Every text the last run hands to Streamlit's Markdown renderer."""
    texts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "title"):
        texts += [str(element.value) for element in getattr(at, kind)]
    for kind in ("header", "subheader"):
        texts += [str(element.value) for element in getattr(at, kind)]
    for kind in (
        "selectbox",
        "multiselect",
        "radio",
        "toggle",
        "checkbox",
        "number_input",
        "text_input",
        "button",
        "expander",
        "metric",
    ):
        texts += [str(widget.label) for widget in getattr(at, kind)]
        texts += [str(getattr(widget, "help", "") or "") for widget in getattr(at, kind)]
    for table in at.table:
        frame = table.value
        texts += [str(label) for label in frame.index]
        texts += [str(label) for label in frame.columns]
        texts += [str(cell) for cell in frame.to_numpy().ravel()]
    return texts


def figure_texts(at: AppTest) -> list[str]:
    """Every string in the page's Plotly figures (titles, ticks, legend, hover)."""
    strings: list[str] = []

    def walk(value):
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for figure in chart_specs(at):
        walk(figure)
    return strings


def assert_text_only(at: AppTest) -> None:
    assert not at.exception, exception_messages(at)
    for text in rendered_texts(at):
        for pattern in DANGEROUS:
            assert not pattern.search(text), f"{pattern.pattern!r} rendered in: {text!r}"
    for text in figure_texts(at):
        assert not re.search(r"<(a|img|span)\b", text, re.IGNORECASE), text
    assert not any(render.UNEXPECTED in e.value for e in at.error)


def shown(at: AppTest, payload: str) -> bool:
    """Whether the payload appears as escaped text somewhere on the page."""
    return any(escape_markdown(payload) in text for text in rendered_texts(at))


# -- links ------------------------------------------------------------------------------------
@pytest.mark.parametrize("payload", PAYLOADS)
def test_link_parameters_are_echoed_as_text(payload):
    at = new_app()
    at.query_params.update(
        {
            "mod": ["PTR", payload],
            "ref": f"{payload}:{payload}",
            "keep": f"{payload}:{payload}",
            "est": payload,
            "ds": payload,
            "page": payload,
        }
    )
    at.run()

    assert_text_only(at)
    warnings = [w.value for w in at.warning]
    assert any(escape_markdown(f"'{payload}' is not a moderator column") in w for w in warnings)
    assert any(escape_markdown(f"ds={payload}") in w for w in warnings)
    assert shown(at, payload)
    assert at.metric[0].value  # the page still shows the default analysis


# -- settings files ---------------------------------------------------------------------------
def load_settings_file(content: bytes, name: str = "settings.json") -> AppTest:
    at = new_app().run()
    at.file_uploader(key=session.SETTINGS_FILE).upload(name, content, "application/json")
    return at.run()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_settings_file_values_are_shown_as_text(payload):
    document = {
        "alliance_dashboard_settings": 1,
        "dataset": payload,
        "moderators": ["PTR", payload],
        "filters": {payload: [payload]},
        "reference": {payload: payload},
        "page": payload,
    }
    at = load_settings_file(json.dumps(document).encode())

    assert_text_only(at)
    assert shown(at, payload)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"alliance_dashboard_settings": 1, "model": ["three-level"]}', "'model'"),
        (b'{"alliance_dashboard_settings": 1, "model": {"a": 1}}', "'model'"),
        (b"[" * 60_000 + b"]" * 60_000, "larger than"),
        (
            b'{"alliance_dashboard_settings": 1, "m": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
            "nested",
        ),
        (b"[1, 2, 3]", "not a settings file"),
        (b'{"alliance_dashboard_settings": 1, "test": 3}', "'test'"),
    ],
)
def test_a_malformed_settings_file_gives_a_message_and_the_page_keeps_working(content, needle):
    at = load_settings_file(content)

    assert not at.exception, exception_messages(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "The settings file was not loaded" in warnings
    assert escape_markdown(needle) in warnings
    assert at.metric[0].value


def test_a_settings_file_with_lone_surrogates_and_control_characters_loads():
    """JSON escapes spell characters no page can send (a lone surrogate made the warning
    raise UnicodeEncodeError): they are cleaned as an upload's cells are."""
    document = (
        '{"alliance_dashboard_settings": 1, "dataset": "a\\ud800b", '
        '"moderators": ["PTR", "x\\udc00\\u001b\\u2028y"], "filters": {"c\\ud800": ["d\\u0000"]}}'
    )
    at = load_settings_file(document.encode())

    assert not at.exception, exception_messages(at)
    warnings = " ".join(w.value for w in at.warning)
    assert escape_markdown("'x y' is not a moderator column") in warnings
    assert at.metric[0].value


def test_one_moderator_written_as_text_is_loaded_as_that_moderator():
    at = load_settings_file(b'{"alliance_dashboard_settings": 1, "moderators": "PTR"}')

    assert not at.exception, exception_messages(at)
    assert at.multiselect(key=session.MODERATORS).value == ["PTR"]


# -- uploads ----------------------------------------------------------------------------------
def upload(at: AppTest, content: bytes, name: str) -> AppTest:
    at.switch_page("pages/data.py").run()
    at.file_uploader(key=session.UPLOAD_FILE).upload(name, content, "text/csv")
    return at.run()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_upload_names_columns_levels_and_labels_are_shown_as_text(payload):
    column = f"{payload} rater"
    levels = (payload, f"{payload} 2")
    content = coding_sheet(column, levels, [payload, f"Study {payload}"])
    at = upload(new_app().run(), content, f"{payload}.csv")
    assert not at.exception, exception_messages(at)
    assert at.session_state[session.SOURCE] == "upload"
    assert_text_only(at)
    assert shown(at, f"{payload}.csv")

    mapping = at.session_state[session.UPLOAD_MAPPING]
    at.session_state[session.UPLOAD_MAPPING] = ColumnMapping(
        **{**mapping.__dict__, "moderators": (column,)}
    )
    at.run()
    at.multiselect(key=session.MODERATORS).set_value(["PTR", column]).run()
    at.multiselect(key=session.FILTER_COLUMNS).set_value([column]).run()
    assert at.multiselect(key=session.MODERATORS).value == ["PTR", column]
    for page in ("overview", "data", "forest", "funnel", "sensitivity", "moderators"):
        at.switch_page(f"pages/{page}.py").run()
        assert_text_only(at)
        assert shown(at, column)  # at least in the sidebar's labels and the model line
    terms = next(t.value for t in at.table if t.value.index.name == "Term").index.tolist()
    # levels[1] is coded in 4 of the 7 studies (tests/coding_sheets.py): the default reference.
    assert escape_markdown(f"{column} = {levels[0]} (vs {levels[1]})") in terms


def test_sensitivity_tables_show_study_ids_as_text():
    """The leave-one-out table lists the studies left out by their IDs: payloads as text
    (it rendered them as Markdown links, images and styles before)."""
    lines = ["study,es_id,r,n,n_therapists"]
    for i, (payload, r) in enumerate(zip(PAYLOADS * 2, np.linspace(0.1, 0.4, 10), strict=True)):
        study = payload if i < len(PAYLOADS) else f"{payload} {i}"
        quoted = '"' + study.replace('"', '""') + '"'
        lines += [f"{quoted},1,{r:.3f},{40 + 7 * i},{2 + i}", f"{quoted},2,{r + 0.05:.3f},50,4"]
    at = upload(new_app().run(), "\n".join(lines).encode(), "studies.csv")
    at.switch_page("pages/sensitivity.py").run()
    assert_text_only(at)
    leave_one_out = next(t.value for t in at.table if "k" in t.value.columns)
    left_out = leave_one_out.iloc[:, 0].tolist()
    assert escape_markdown(PAYLOADS[0]) in left_out or any(
        escape_markdown(PAYLOADS[0]) in cell for cell in left_out
    )


# -- numbers ----------------------------------------------------------------------------------
EQUAL_R = b"label,r,n,n_therapists\n" + b"".join(
    f"{i},0.30,{40 + 10 * i},{2 + i}\n".encode() for i in range(1, 9)
)


def test_equal_correlations_with_knapp_hartung_give_a_message_not_a_zero_width_interval():
    at = upload(new_app().run(), EQUAL_R, "equal.csv")
    at.radio(key=session.TEST).set_value("t").run()
    at.multiselect(key=session.MODERATORS).set_value([]).run()
    at.switch_page("pages/overview.py").run()

    assert not at.exception, exception_messages(at)
    errors = " ".join(e.value for e in at.error)
    assert escape_markdown("Knapp–Hartung tests are not available") in errors
    assert render.UNEXPECTED not in errors
    at.switch_page("pages/funnel.py").run()
    assert not at.exception, exception_messages(at)
    assert not any(render.UNEXPECTED in e.value for e in at.error)

    at.radio(key=session.TEST).set_value("z").run()
    at.switch_page("pages/overview.py").run()
    assert not at.error
    # Closed form: all z equal, so tau2 = 0 and the pooled z is atanh(.30) with
    # SE = 1 / sqrt(sum(n - 3)); the interval is back-transformed to r.
    n = np.array([40 + 10 * i for i in range(1, 9)])
    z, se = np.arctanh(0.30), 1.0 / np.sqrt(np.sum(n - 3))
    lo, hi = np.tanh(z - stats.norm.ppf(0.975) * se), np.tanh(z + stats.norm.ppf(0.975) * se)
    shown_metrics = metrics_of(at)
    assert shown_metrics["Pooled r"] == "0.30"
    assert shown_metrics["95% confidence interval"] == fmt_interval(lo, hi)
    assert lo < 0.295 and hi > 0.305  # a real interval, not [0.30, 0.30]


def test_a_ptr_of_zero_is_named_on_the_data_page_and_left_out_of_log_ptr():
    # n = 0 makes PTR 0, whose log does not exist. Uploads reject n <= 0 row by row (the
    # engine's own message for PTR <= 0 is covered in tests/unit/test_numeric_edges.py).
    sheet = (
        b"label,yi,vi,n,n_therapists\n"
        b"1,0.30,0.02,40,4\n2,0.20,0.03,0,3\n3,0.35,0.01,60,6\n4,0.25,0.02,50,2\n"
        b"5,0.15,0.04,30,5\n6,0.40,0.02,70,7\n"
    )
    at = upload(new_app().run(), sheet, "zero.csv")
    assert not at.exception, exception_messages(at)
    assert any(escape_markdown("1 with n ≤ 0 (row 3)") in w.value for w in at.warning)

    at.switch_page("pages/overview.py").run()
    assert not at.exception, exception_messages(at)
    assert not at.error, [e.value for e in at.error]
    assert at.multiselect(key=session.MODERATORS).value == ["PTR"]
    assert at.radio(key=session.PTR_SCALE).value == "log"
    assert metrics_of(at)["Effect sizes (k)"] == "5"


def metrics_of(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


# -- CSV downloads ----------------------------------------------------------------------------
FORMULAS = [
    '=HYPERLINK("http://evil.example/x","click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3",
]


def test_downloaded_csv_files_neutralise_formulas(downloads):
    column = "@rater"  # a coefficient name starts with its column name
    content = coding_sheet(column, ("@SUM(1+1)", "=1+2"), FORMULAS)
    at = upload(new_app().run(), content, "formulas.csv")
    mapping = at.session_state[session.UPLOAD_MAPPING]
    at.session_state[session.UPLOAD_MAPPING] = ColumnMapping(
        **{**mapping.__dict__, "moderators": (column,)}
    )
    at.run()
    at.multiselect(key=session.MODERATORS).set_value(["PTR", column]).run()
    at.switch_page("pages/data.py").run()
    assert not at.exception, exception_messages(at)

    def download(key: str) -> pd.DataFrame:
        # After the provenance lines.
        return pd.read_csv(io.BytesIO(downloads.bytes(at, key)), comment="#")

    rows = download("rows")
    assert sorted(set(rows["label"])) == sorted("'" + f for f in FORMULAS)
    assert set(rows["'@rater"]) == {"'@SUM(1+1)", "'=1+2"}  # header quoted too
    assert pd.api.types.is_float_dtype(rows["r"]) and (rows["r"] > 0).all()
    results = download("results")
    text_cells = [c for c in results.to_numpy().ravel() if isinstance(c, str)]
    assert "'@rater@SUM(1+1)" in text_cells  # column and level make a coefficient name
    assert not [c for c in text_cells if c[:1] in ("=", "+", "-", "@")]


def test_a_kilobyte_link_value_is_quoted_shortened_in_its_notice():
    from pages._ui.loading import defaults_for
    from pages._ui.state import settings_from_link

    settings, problems = settings_from_link(
        {"mod": ["m" * 10_000], "ds": ["d" * 10_000]}, defaults_for
    )
    assert len(problems) == 2
    assert all(len(problem) < 400 for problem in problems), [len(p) for p in problems]
    assert "m" * 79 + "…" in problems[1] and "d" * 79 + "…" in problems[0]
    assert settings.moderators == defaults_for(settings.dataset).moderators


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_caution_naming_a_one_study_level_is_shown_as_text(payload):
    """The Overview's and Moderators page's readings name a level from one study in their
    caution: that level is user text, so the readings are shown escaped."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["study", "es_id", "label", "r", "n", "n_therapists", "rater"])
    for study, es, r, n, therapists in ROWS:
        level = payload if study == 1 else "other"
        writer.writerow([study, es, f"Study {study}", r, n, therapists, level])
    at = upload(new_app().run(), out.getvalue().encode(), "one-study-level.csv")
    mapping = at.session_state[session.UPLOAD_MAPPING]
    at.session_state[session.UPLOAD_MAPPING] = ColumnMapping(
        **{**mapping.__dict__, "moderators": ("rater",)}
    )
    at.run()
    at.multiselect(key=session.MODERATORS).set_value(["rater"]).run()
    for page in ("overview", "moderators"):
        at.switch_page(f"pages/{page}.py").run()
        assert_text_only(at)
        cautions = [m.value for m in at.markdown if "comes from a single study" in m.value]
        assert cautions, page  # the reading names the level ...
        assert all(escape_markdown(f"'{payload}'") in text for text in cautions)  # ... as text
