"""The report as a document: numbered tables and figures, and its two renderings (HTML, Word).

:mod:`alliance_core.handover.report` decides what the report says; this module only lays it
out. Every text is user-safe on the way out: HTML-escaped, and characters that XML cannot hold
replaced, so the Word file never fails on a character of an uploaded sheet.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field

from alliance_core.data.control_text import xml_safe, xml_safe_copy
from alliance_core.errors import AnalysisError


# -- the report object ----------------------------------------------------------------------
@dataclass(frozen=True)
class Table:
    number: int
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Figure:
    number: int
    title: str
    caption: str
    png: bytes | None
    problem: str | None = None  # why there is no picture


@dataclass(frozen=True)
class Report:
    title: str
    notice: str | None  # first line: simulated data
    methods: tuple[str, ...]
    results: tuple[str, ...]
    tables: tuple[Table, ...]
    figures: tuple[Figure, ...]
    provenance: tuple[tuple[str, str], ...]
    references: tuple[str, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    # -- HTML --------------------------------------------------------------------------
    def to_html(self) -> str:
        def e(text: str) -> str:  # a character HTML and XML cannot hold shows as U+FFFD
            return html.escape(xml_safe(text))

        parts = [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{e(self.title)}</title>",
            "<style>"
            "body{font-family:Georgia,serif;max-width:50em;margin:2em auto;line-height:1.5;"
            "padding:0 1em}"
            "table{border-collapse:collapse;margin:1em 0}"
            "th,td{padding:.25em .6em;text-align:left}"
            "thead th{border-top:2px solid #000;border-bottom:1px solid #000}"
            "tbody tr:last-child td{border-bottom:2px solid #000}"
            ".notice{background:#fff3cd;border:1px solid #c9a227;padding:.5em;font-weight:bold}"
            "figure{margin:1.5em 0}img{max-width:100%}"
            "figcaption,.note{font-size:.9em}"
            "dl.provenance{font-family:monospace;font-size:.85em}"
            "dl.provenance dt{font-weight:bold}dl.provenance dd{margin:0 0 .3em 1.5em}"
            "</style>",
            "</head>",
            "<body>",
        ]
        if self.notice:
            parts.append(f'<p class="notice">{e(self.notice)}</p>')
        parts.append(f"<h1>{e(self.title)}</h1>")
        for warning in self.warnings:
            parts.append(f'<p class="note"><strong>Note.</strong> {e(warning)}</p>')
        parts.append("<h2>Method</h2>")
        parts += [f"<p>{e(text)}</p>" for text in self.methods]
        parts.append("<h2>Results</h2>")
        parts += [f"<p>{e(text)}</p>" for text in self.results]
        for table in self.tables:
            parts.append("<table>")
            parts.append(
                f"<caption><strong>Table {table.number}</strong><br><em>{e(table.title)}</em>"
                "</caption>"
            )
            parts.append(
                "<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in table.header) + "</tr></thead>"
            )
            parts.append("<tbody>")
            for row in table.rows:
                parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
            parts.append("</tbody></table>")
            if table.note:
                parts.append(f'<p class="note"><em>Note.</em> {e(table.note)}</p>')
        for figure in self.figures:
            parts.append("<figure>")
            if figure.png is not None:
                data = base64.b64encode(figure.png).decode("ascii")
                parts.append(f'<img src="data:image/png;base64,{data}" alt="{e(figure.title)}">')
            else:
                parts.append(
                    f'<p class="note">The figure could not be drawn here: {e(figure.problem or "")}'
                    "</p>"
                )
            parts.append(
                f"<figcaption><strong>Figure {figure.number}</strong>. <em>{e(figure.title)}</em>. "
                f"{e(figure.caption)}</figcaption>"
            )
            parts.append("</figure>")
        parts.append("<h2>Provenance</h2>")
        parts.append('<dl class="provenance">')
        for key, value in self.provenance:
            parts.append(f"<dt>{e(key)}</dt><dd>{e(value)}</dd>")
        parts.append("</dl>")
        parts.append("<h2>References</h2>")
        parts += [f"<p>{e(ref)}</p>" for ref in self.references]
        parts += ["</body>", "</html>", ""]
        return "\n".join(parts)

    # -- Word --------------------------------------------------------------------------
    def to_docx(self) -> bytes:
        """The report as a Word document; a character XML cannot hold shows as U+FFFD."""
        return xml_safe_copy(self)._docx()

    def _docx(self) -> bytes:
        try:
            import docx
            from docx.shared import Inches, Pt
        except ImportError as error:  # pragma: no cover - python-docx is a pinned dependency
            raise AnalysisError("The Word report needs the python-docx package.") from error
        document = docx.Document()
        if self.notice:
            para = document.add_paragraph()
            run = para.add_run(self.notice)
            run.bold = True
        document.add_heading(self.title, level=1)
        for warning in self.warnings:
            document.add_paragraph(f"Note. {warning}")
        document.add_heading("Method", level=2)
        for text in self.methods:
            document.add_paragraph(text)
        document.add_heading("Results", level=2)
        for text in self.results:
            document.add_paragraph(text)
        for table in self.tables:
            document.add_paragraph().add_run(f"Table {table.number}").bold = True
            document.add_paragraph().add_run(table.title).italic = True
            grid = document.add_table(rows=1, cols=len(table.header))
            for cell, text in zip(grid.rows[0].cells, table.header, strict=True):
                cell.text = text
            for row in table.rows:
                cells = grid.add_row().cells
                for cell, text in zip(cells, row, strict=True):
                    cell.text = text
            if table.note:
                para = document.add_paragraph()
                para.add_run("Note. ").italic = True
                para.add_run(table.note)
        for figure in self.figures:
            if figure.png is not None:
                document.add_picture(io.BytesIO(figure.png), width=Inches(6))
            else:
                document.add_paragraph(f"The figure could not be drawn here: {figure.problem}")
            para = document.add_paragraph()
            para.add_run(f"Figure {figure.number}. ").bold = True
            para.add_run(figure.title + ". ").italic = True
            para.add_run(figure.caption)
        document.add_heading("Provenance", level=2)
        for key, value in self.provenance:
            para = document.add_paragraph()
            para.add_run(f"{key}: ").bold = True
            run = para.add_run(value)
            run.font.size = Pt(9)
        document.add_heading("References", level=2)
        for ref in self.references:
            document.add_paragraph(ref)
        out = io.BytesIO()
        document.save(out)
        return out.getvalue()
