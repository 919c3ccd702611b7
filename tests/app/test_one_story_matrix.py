"""One state, one story, number by number: for every state of the matrix (tests/app/
one_story_states.py) each headline number of ``AnalysisState.headline`` (each model's
prediction with CI and PI, k, I², τ² or σ², the moderator test's statistic and p, each
coefficient with se, p and CI) is read back from every surface and compared with the state:

* the results download (exactly),
* the R (metafor) and Python reproduction scripts of the Overview's zip, run (each script's own
  fit, to the scripts' tolerance of 1e-6 relative): one Rscript process and one Python process
  run every state's scripts, and each writes the table it built from its own fit,
* the page (AppTest: the Overview's metrics, heterogeneity table and sentences, the Moderators
  page's coefficient table and test), at the precision the page prints,
* the report, HTML and Word, at the precision the report prints;

and no sentence on a page or in the report calls a flagged test significant or non-significant.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import html.parser
import io
import re
import subprocess
import sys
import urllib.parse
import zipfile
from pathlib import Path

import docx
import pandas as pd
import pytest

from alliance_core.analyses.run import effect_size_table
from alliance_core.formatting import format_coefficient, format_number, format_p, format_p_cell
from alliance_core.handover import reproduce
from alliance_core.handover.report import state_report
from alliance_core.handover.reproduce.common import ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE
from pages._ui import session, tables
from pages._ui.state import UPLOAD_DATASET
from tests.app.conftest import exception_messages, new_app, unescaped
from tests.app.one_story_states import (
    ALL_STATES,
    ONE_STUDY_LEVEL,
    STATES,
    UPLOAD_FILE,
    UPLOAD_MODERATORS,
    UPLOAD_STATE,
    BuiltState,
    built,
    headline_from_results,
    settings_of,
    upload_mapping,
)
from tests.r_reference import apply, needs_r

VERDICT = re.compile(r"\b(non-?)?significant(ly)?\b", re.IGNORECASE)


# -- reading a state's numbers from a results table ---------------------------------------------
def _from_tables(frames: dict[str, pd.DataFrame], state) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, run, _ in state.models():
        out.update(headline_from_results(frames[label], label, run.robust is not None))
    return out


def _assert_same_numbers(found: dict[str, float], expected: dict[str, float], *, exact: bool):
    assert set(found) == set(expected), set(found) ^ set(expected)
    differing = []
    for key, value in expected.items():
        got = found[key]
        if pd.isna(value) and pd.isna(got):
            continue
        scale = 100.0 if key.endswith(".I2") else 0.0
        tolerance = (
            1e-12 * abs(value) + 1e-15
            if exact
            else RELATIVE_TOLERANCE * max(abs(value), scale) + ABSOLUTE_TOLERANCE
        )
        if not abs(got - value) <= tolerance:
            differing.append(f"{key}: state {value!r}, surface {got!r}")
    assert not differing, "\n".join(differing)


def test_the_results_download_holds_every_headline_number():
    for name in ALL_STATES:
        shown = built(name)
        state = shown.state
        run = shown.shown_run
        csv = tables.results_csv(
            run, state.on_r_scale, None, pooled=state.pooled, robust=run.robust
        ).decode()
        frame = pd.read_csv(io.StringIO(csv), comment="#")
        # The pooled model's rows first, then the moderator model's; the "model" column says
        # which row is whose.
        frames = {
            label: frame[frame["model"] == tables.model_label(run)]
            for label, run, _ in state.models()
        }
        _assert_same_numbers(_from_tables(frames, state), state.headline(), exact=True)


# -- the reproduction scripts, run ------------------------------------------------------------
R_BATCH = r"""
suppressPackageStartupMessages(library(metafor))
top <- getwd()
for (d in commandArgs(trailingOnly = TRUE)) {
  setwd(file.path(top, d))
  env <- new.env()
  status <- NA
  # analysis.R ends with quit(status = ...); here it only records the status.
  env$quit <- function(status = 0, ...) status <<- status
  started <- proc.time()[["elapsed"]]
  out <- tryCatch(capture.output(sys.source("analysis.R", envir = env)),
                  error = function(e) paste("error:", conditionMessage(e)))
  seconds <- proc.time()[["elapsed"]] - started
  if (exists("ours", envir = env, inherits = FALSE)) {
    numbers <- data.frame(section = env$dashboard$section, name = env$dashboard$name,
                          env$ours, check.names = FALSE)
    write.csv(numbers, "script_numbers.csv", row.names = FALSE)
  }
  line <- grep("^(agreement with the dashboard|differs|error)", out, value = TRUE)
  cat(sprintf("STATE %s status=%s seconds=%.1f | %s\n", d, status, seconds,
              paste(line, collapse = " | ")))
  setwd(top)
}
"""

PY_BATCH = r"""
import contextlib, io, os, runpy, sys
top = os.getcwd()
for d in sys.argv[1:]:
    os.chdir(os.path.join(top, d))
    out, status = io.StringIO(), []
    exit_ = sys.exit
    sys.exit = lambda code=0: status.append(code)  # the script's last line; recorded here
    try:
        with contextlib.redirect_stdout(out):
            names = runpy.run_path("analysis.py", run_name="__main__")
        names["ours"].to_csv("script_numbers.csv", index=False, float_format="%.17g")
    except Exception as error:
        out.write(f"error: {error!r}\n")
    finally:
        sys.exit = exit_
    lines = [l for l in out.getvalue().splitlines()
             if l.startswith(("agreement with the dashboard", "differs", "error"))]
    print(f"STATE {d} status={status[0] if status else None} | " + " | ".join(lines), flush=True)
    os.chdir(top)
"""


def _bundle(shown: BuiltState, language: str) -> bytes:
    """The Overview's zip of a state: every model it shows, the pooled model first."""
    state = shown.state
    models = [(label, run, shown.provenance(run)) for label, run, _ in state.models()]
    return reproduce.models_bundle(
        models,
        shown.mapping,
        on_r_scale=state.on_r_scale,
        language=language,
        table=effect_size_table(shown.data, shown.mapping),
    )


def _write_scripts(root: Path, language: str) -> dict[tuple[str, str], str]:
    """Every state's zip unpacked under ``root``; (state, model label) -> its script folder."""
    folders = {}
    for name in ALL_STATES:
        shown = built(name)
        with zipfile.ZipFile(io.BytesIO(_bundle(shown, language))) as archive:
            archive.extractall(root / name)
        labels = [label for label, _, _ in shown.state.models()]
        for label in labels:
            folders[(name, label)] = name if len(labels) == 1 else f"{name}/{label}"
    return folders


BATCHES = 2


def _run_scripts(tmp_path: Path, language: str) -> None:
    folders = _write_scripts(tmp_path, language)
    if language == "R":
        (tmp_path / "batch.R").write_text(R_BATCH)
        command = ["Rscript", "batch.R"]
    else:
        (tmp_path / "batch.py").write_text(PY_BATCH)
        command = [sys.executable, "batch.py"]
    # Two batch processes, each loading R (metafor) or Python once, share the scripts: the
    # slow three-level CHE fits of the default dataset land in both.
    names = list(folders.values())
    batches = [
        subprocess.Popen(
            [*command, *names[start::BATCHES]],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for start in range(BATCHES)
    ]
    stdout = ""
    for batch in batches:
        out, err = batch.communicate(timeout=1800)
        assert batch.returncode == 0, err[-3000:]
        stdout += out
    print(stdout)
    lines = {line.split()[1]: line for line in stdout.splitlines() if line.startswith("STATE")}
    failures = []
    for name in ALL_STATES:
        state = built(name).state
        frames = {}
        for label, _, _ in state.models():
            folder = folders[(name, label)]
            line = lines.get(folder, f"STATE {folder}: no output")
            counts = reproduce.parse_agreement(line)
            if "status=0" not in line or counts is None or counts[0] != counts[1]:
                failures.append(line)
                continue
            frames[label] = pd.read_csv(tmp_path / folder / "script_numbers.csv")
        if len(frames) == len(state.models()):
            try:
                _assert_same_numbers(_from_tables(frames, state), state.headline(), exact=False)
            except AssertionError as error:
                failures.append(f"{name}: {error}")
    assert not failures, "\n".join(failures)


@apply(needs_r("metafor", "clubSandwich"))
def test_the_r_scripts_give_every_headline_number(tmp_path):
    _run_scripts(tmp_path, "R")


def test_the_python_scripts_give_every_headline_number(tmp_path):
    _run_scripts(tmp_path, "Python")


# -- the pages --------------------------------------------------------------------------------
def _share_query(at) -> dict[str, list[str]]:
    links = [t.value for t in at.sidebar.text if "?" in t.value]
    assert len(links) == 1
    return urllib.parse.parse_qs(links[0].split("?", 1)[1])


@functools.cache
def _pages(name: str):
    """The Overview and (with moderators) the Moderators page of one state, run once per
    process, with the state the page ran (built from the page's own share link)."""
    at = new_app()
    if name == UPLOAD_STATE:
        at.run()
        at.switch_page("pages/data.py").run()
        at.file_uploader(key=session.UPLOAD_FILE).upload(UPLOAD_FILE, ONE_STUDY_LEVEL, "text/csv")
        at.run()
        at.session_state[session.UPLOAD_MAPPING] = upload_mapping()
        at.run()
        at.multiselect(key=session.MODERATORS).set_value(list(UPLOAD_MODERATORS)).run()
        at.switch_page("pages/overview.py").run()
        shown = built(name)
        assert shown.state.settings.dataset == UPLOAD_DATASET
    else:
        at.query_params.update(STATES[name])
        at.run()
        shown = built(name)
        # The page ran the state the matrix built: its link describes the same settings.
        # (The link also names the open page, which is not part of the analysis.)
        linked = dataclasses.replace(settings_of(_share_query(at)), page=None)
        assert linked == dataclasses.replace(shown.state.settings, page=None)
    assert not at.exception, exception_messages(at)
    overview = _page_text(at)
    moderators = None
    if shown.state.moderated is not None:
        at.switch_page("pages/moderators.py").run()
        assert not at.exception, exception_messages(at)
        moderators = _page_text(at)
    return shown, overview, moderators


def _page_text(at) -> dict:
    return {
        "metrics": {m.label: m.value for m in at.metric},
        # As the reader sees it: readings are escaped (they hold user text).
        "markdown": [unescaped(m.value) for m in at.markdown]
        + [unescaped(c.value) for c in at.caption],
        "tables": [t.value for t in at.table],
    }


def _metric(page: dict, prefix: str) -> str:
    found = [value for label, value in page["metrics"].items() if label.startswith(prefix)]
    assert len(found) == 1, list(page["metrics"])
    return found[0]


@pytest.fixture(params=ALL_STATES)
def pages_of(request):
    return _pages(request.param)


def test_the_pages_show_the_states_numbers(pages_of):
    shown, overview, moderators = pages_of
    state = shown.state
    numbers = state.headline()
    # The Overview: the pooled estimate, its CI and PI, and the pooled model's heterogeneity.
    assert _metric(overview, "Pooled") == tables.fmt_num(numbers["pooled.prediction.pred"])
    assert _metric(overview, "95% confidence") == tables.fmt_interval(
        numbers["pooled.prediction.ci_lb"], numbers["pooled.prediction.ci_ub"]
    )
    if pd.notna(numbers["pooled.prediction.pi_lb"]):
        assert _metric(overview, "95% prediction") == tables.fmt_interval(
            numbers["pooled.prediction.pi_lb"], numbers["pooled.prediction.pi_ub"]
        )
    heterogeneity = next(t for t in overview["tables"] if t.index.name == "Statistic")
    values = heterogeneity.iloc[:, 0].astype(str)
    total = "I² total" if "I² total" in values.index else "I²"
    assert values[total].split(" [")[0] == f"{numbers['pooled.I2']:.1f}%"
    if "pooled.tau2" in numbers:
        assert (
            values[values.index.str.startswith("τ²")]
            .iloc[0]
            .startswith(tables.fmt_small(numbers["pooled.tau2"]))
        )
    for level, row in (("study", "σ² between studies"), ("es", "σ² within studies")):
        if f"pooled.sigma2.{level}" in numbers:
            assert values[row] == tables.fmt_small(numbers[f"pooled.sigma2.{level}"])
    if moderators is None:
        return
    # The moderator test: on the Overview (its sentence) and the Moderators page (its metrics).
    statistic = f"{numbers['moderators.omnibus.statistic']:.2f}"
    p_text = format_p(numbers["moderators.omnibus.pval"])
    assert any(statistic in text and p_text in text for text in overview["markdown"])
    assert statistic in _metric(moderators, "Test of moderators")
    assert _metric(moderators, "p (moderators)") == tables.fmt_p(numbers["moderators.omnibus.pval"])
    # Each coefficient: the Moderators page's table, at the decimals its SE needs.
    table = next(t for t in moderators["tables"] if t.index.name == "Term")
    assert len(table) == len(state.moderated.inference_table)
    for (term, _), (_, cells) in zip(
        state.moderated.inference_table.iterrows(), table.iterrows(), strict=True
    ):
        estimate, se = format_coefficient(
            numbers[f"moderators.{term}.estimate"], numbers[f"moderators.{term}.se"], minimum=3
        )
        low, _ = format_coefficient(
            numbers[f"moderators.{term}.ci_lb"], numbers[f"moderators.{term}.se"], minimum=3
        )
        high, _ = format_coefficient(
            numbers[f"moderators.{term}.ci_ub"], numbers[f"moderators.{term}.se"], minimum=3
        )
        assert (cells["Estimate"], cells["SE"]) == (estimate, se), term
        assert cells["p"] == tables.fmt_p(numbers[f"moderators.{term}.pval"]), term
        assert cells["95% CI"] == f"[{low}, {high}]", term


# -- the report, HTML and Word ----------------------------------------------------------------
class _Rows(html.parser.HTMLParser):
    """The cells of every table row of an HTML page, as text."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@functools.cache
def _report(name: str):
    shown = built(name)
    report = state_report(shown.state, shown.provenance(shown.shown_run))
    page = report.to_html()
    parser = _Rows()
    parser.feed(page)
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    document = docx.Document(io.BytesIO(report.to_docx()))
    word_rows = [
        [cell.text for cell in row.cells] for table in document.tables for row in table.rows
    ]
    word_text = "\n".join(p.text for p in document.paragraphs) + "\n".join(
        " ".join(row) for row in word_rows
    )
    return shown, report, {"HTML": (parser.rows, text), "Word": (word_rows, word_text)}


@pytest.fixture(params=ALL_STATES)
def report_of(request):
    return _report(request.param)


def test_the_report_shows_the_states_numbers_in_html_and_word(report_of):
    shown, report, renderings = report_of
    state = shown.state
    numbers = state.headline()
    on_r = state.on_r_scale

    def value(v):
        return format_number(v, 2).replace("0.", ".", 1) if on_r else format_number(v, 3)

    pooled = (
        f"= {value(numbers['pooled.prediction.pred'])}, 95% CI "
        f"[{value(numbers['pooled.prediction.ci_lb'])}, {value(numbers['pooled.prediction.ci_ub'])}]"
    )
    expected_text = [pooled, f"I² = {format_number(numbers['pooled.I2'], 1)}%"]
    if "pooled.tau2" in numbers:
        expected_text.append(f"τ² = {format_number(numbers['pooled.tau2'], 4)}")
    for level in ("study", "es"):
        if f"pooled.sigma2.{level}" in numbers:
            expected_text.append(format_number(numbers[f"pooled.sigma2.{level}"], 4))
    expected_rows = []
    if state.moderated is not None:
        expected_text.append(
            f"= {format_number(numbers['moderators.omnibus.statistic'], 2)}, "
            f"{format_p(numbers['moderators.omnibus.pval'])}"
        )
        for term in state.moderated.inference_table.index:
            b, se = format_coefficient(
                numbers[f"moderators.{term}.estimate"], numbers[f"moderators.{term}.se"]
            )
            digits = len(b.split(".")[-1])
            interval = (
                f"[{format_number(numbers[f'moderators.{term}.ci_lb'], digits)}, "
                f"{format_number(numbers[f'moderators.{term}.ci_ub'], digits)}]"
            )
            p_cell = format_p_cell(numbers[f"moderators.{term}.pval"])
            expected_rows.append((term, b, se, p_cell, interval))
    for rendering, (rows, text) in renderings.items():
        for wanted in expected_text:
            assert wanted in text, (rendering, wanted)
        for term, b, se, p_cell, interval in expected_rows:
            assert any(
                row[1:3] == [b, se] and row[-2:] == [p_cell, interval]
                for row in rows
                if len(row) > 4
            ), (rendering, term, b, se, p_cell, interval)


# -- words follow flags -----------------------------------------------------------------------
def _sentences(texts) -> list[str]:
    return [s for text in texts for s in re.split(r"(?<=[.:;])\s+(?=[A-Z])", text)]


def _flagged_tokens(state, minimum: int) -> list[str]:
    """Numbers that name a flagged test in a sentence: the moderator test's statistic and each
    flagged coefficient's estimate (with the decimals a surface gives it)."""
    tokens = []
    for _, run, flags in state.models():
        if run.omnibus is not None and flags.omnibus_caution():
            tokens.append(f"{run.omnibus[0]:.2f}")
        for term, row in run.inference_table.iterrows():
            if flags.coefficient_caution(term):
                tokens.append(format_coefficient(row["estimate"], row["se"], minimum=minimum)[0])
    return tokens


def test_no_sentence_calls_a_flagged_test_significant_or_not(pages_of):
    shown, overview, moderators = pages_of
    name = shown.name
    state = shown.state
    _, report, _ = _report(name)
    surfaces = {
        "Overview": (_sentences(overview["markdown"]), 3),
        "Moderators": (_sentences(moderators["markdown"] if moderators else []), 3),
        "report": (_sentences([*report.results, *report.methods]), 2),
    }
    for surface, (sentences, minimum) in surfaces.items():
        for token in _flagged_tokens(state, minimum):
            for sentence in sentences:
                if re.search(rf"(?<![\d.]){re.escape(token)}(?!\d)", sentence):
                    assert not VERDICT.search(sentence), (name, surface, sentence)


def test_the_matrix_holds_flagged_states():
    # Else the test above could never see a flagged test.
    flagged = {name for name in ALL_STATES if _flagged_tokens(built(name).state, 3)}
    assert {"flagged-CR2", "three-studies", UPLOAD_STATE} <= flagged, flagged
