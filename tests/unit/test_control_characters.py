"""Control characters in an upload: cleaned on reading with a note naming the cells, and the
reports write any character (Word: XML 1.0; HTML: UTF-8) without failing."""

from __future__ import annotations

import csv
import dataclasses
import io

import docx
import html5lib
import pytest

from alliance_core.analyses.run import run_analysis
from alliance_core.data.control_text import REPLACEMENT, clean_upload_text, xml_safe
from alliance_core.data.uploads.reading import read_table
from alliance_core.errors import AnalysisError
from alliance_core.handover.report import build_report
from tests.unit.reproduce_states import STATES, analysis_of

# Each breaks something downstream when kept (see alliance_core.data.control_text).
CONTROLS = ["\r\n", "\r", "\n", "\x1b", "\x0b", "\x7f", "\x85", "\u2028", "\u2029", "\t"]


def sheet_with(level: str, label: str, column: str) -> bytes:
    """30 studies; study 1 holds ``level``, studies 1 and 2 the ``label``, the others plain
    text (a sheet mostly of control characters would be refused as binary)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["study", "r", "n", column, "label"])
    for study in range(1, 31):
        writer.writerow(
            [
                study,
                round(0.1 + study / 100, 3),
                40 + study,
                level if study == 1 else ("plain" if study % 2 else "other"),
                label if study <= 2 else f"Study {study}",
            ]
        )
    return out.getvalue().encode("utf-8")


@pytest.mark.parametrize("control", CONTROLS)
def test_control_characters_in_levels_labels_and_names_become_spaces_and_are_named(control):
    content = sheet_with(f"a{control}b", f"x{control}{control}y", f"rat{control}er")
    table = read_table(content, "sheet.csv")
    frame = table.frame
    assert list(frame.columns) == ["study", "r", "n", "rat er", "label"]
    assert set(frame["rat er"]) == {"a b", "plain", "other"}
    assert frame["label"].tolist()[:3] == ["x y", "x y", "Study 3"]  # a run is one space
    note = next(n for n in table.report.notes if "control characters" in n)
    assert "4 cells (D1, D2, E2, E3)" in note


def test_a_clean_sheet_has_no_note():
    table = read_table(sheet_with("a", "x", "rater"), "sheet.csv")
    assert not any("control characters" in n for n in table.report.notes)


def test_nul_in_a_csv_is_refused_as_binary():
    with pytest.raises(AnalysisError, match="binary"):
        read_table(sheet_with("a\x00b", "x", "rater"), "sheet.csv")


@pytest.mark.parametrize("text", ["a\ud800b", "\x00", "\x1b[31m", "\ufffe", "\x9b"])
def test_cleaned_text_holds_none_of_them(text):
    assert clean_upload_text(text).strip(" ") in ("a b", "", "[31m")
    assert REPLACEMENT in xml_safe(text)


def test_reports_write_every_character():
    """A provenance and a table cell holding NUL, ESC, C1, a lone surrogate, U+FFFE and the
    line separators: the Word file is written and opens, the HTML encodes and parses."""
    run, mapping, prov, on_r = analysis_of(STATES[0])
    pooled = run_analysis(
        run.data, mapping, run.settings.with_changes(moderators=(), filters={}), table=run.data
    )
    hostile = "a\x00b\x1bc\x85d\ud800e\ufffef\u2028g\u2029h\x0bi"
    prov = dataclasses.replace(prov, dataset=hostile, dataset_title=hostile)

    def no_figure(fig, fmt):
        raise AnalysisError("no browser in this test")

    report = build_report(run, pooled, prov, on_r_scale=on_r, figures={}, exporter=no_figure)
    table = report.tables[0]
    rows = ((hostile, *table.rows[0][1:]), *table.rows[1:])
    report = dataclasses.replace(
        report, tables=(dataclasses.replace(table, rows=rows), *report.tables[1:])
    )
    document = docx.Document(io.BytesIO(report.to_docx()))
    text = "\n".join(p.text for p in document.paragraphs)
    assert f"a{REPLACEMENT}b{REPLACEMENT}c" in text
    page = report.to_html().encode("utf-8")  # a lone surrogate would fail here
    html5lib.HTMLParser(strict=True).parse(page)  # and a control character here
