"""Hostile coding sheets for the red-team suite: every text a user controls carries a payload.

Study IDs, labels, a moderator's column name, its levels and the file name hold R, Python,
HTML/Markdown, Plotly-template, spreadsheet-formula and control-character payloads. Code
payloads create a canary file in the working directory if they ever run, so a test only has
to look for the file after running the scripts.
"""

from __future__ import annotations

import csv
import io
import re

HOST = "evil.invalid"  # .invalid never resolves (RFC 2606): a request to it is only recorded
CANARY = "PWNED"  # a file of this name appearing proves injected code ran

# R and Python code that would create the canary if a script evaluated the text.
R_CODE = f'"); file.create("{CANARY}_R"); x <- ("'
R_SYSTEM = f"`r system('touch {CANARY}_R2')` $(touch {CANARY}_SH)"
PY_CODE = f"'); open('{CANARY}_PY', 'w'); print('"
PY_FSTRING = f"{{__import__('pathlib').Path('{CANARY}_PY2').touch()}}"

MARKDOWN = [
    f"[click](http://{HOST}/md)",
    f"![i](http://{HOST}/img.png)",
    f"http://{HOST}/bare",
    f"<https://{HOST}/auto>",
    ":red[RED]",
    "**bold**",
    rf"$\href{{http://{HOST}/tex}}{{tex}}$",
]
HTML = [
    f'<a href="http://{HOST}/a">CLICKME</a>',
    f'<img src="http://{HOST}/h.png" onerror="alert(1)">',
    "<script>alert(1)</script>",
]
FORMULAS = [
    f'=HYPERLINK("http://{HOST}/f","st")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3",
    f'a,""=HYPERLINK("http://{HOST}/q","x")',
    "'=quoted",
]
# Cleaned to spaces on reading (the upload names the cells).
CONTROLS = ["a\r\nb", "c\rd", "e\x1bf", "g\u2028h", "i\u2029j", "k\x85l"]

# The moderator's column name: HTML, a Plotly template reaching the provenance, R and Python.
COLUMN = f'<a href="http://{HOST}/m">CLICKME</a>%{{meta.provenance.moderators}} {R_CODE}'
# Its two levels: a formula and Markdown with code (and a line break, cleaned on reading).
LEVELS = (
    f'=HYPERLINK("http://{HOST}","lv") {PY_CODE}',
    f"[lv](http://{HOST}/lv)\r\n{R_SYSTEM}",
)
# Study IDs and labels: every payload, a control character in some.
STUDY_IDS = [*MARKDOWN, *HTML, *FORMULAS, R_CODE, PY_FSTRING]
LABELS = [*reversed(MARKDOWN), *HTML, *CONTROLS, PY_CODE]
FILE_NAME = f'=HYPERLINK("http://{HOST}/fn","f") [x](http://{HOST}/fn) {PY_CODE}.csv'

# (r, n, therapists) per study; each study has two effect sizes.
_SIZES = [(0.30, 50, 5), (0.22, 60, 6), (0.35, 45, 9), (0.25, 80, 4), (0.15, 120, 30)]


def hostile_sheet() -> bytes:
    """An analysable CSV (three-level: two effect sizes per study) full of payloads."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["study", "es_id", "label", "r", "n", "n_therapists", COLUMN])
    for i, study in enumerate(STUDY_IDS):
        r, n, therapists = _SIZES[i % len(_SIZES)]
        for es in (1, 2):
            label = LABELS[(2 * i + es) % len(LABELS)]
            shift = 0.03 * ((i * 7 + es * 3) % 5 - 2)
            writer.writerow(
                [study, es, label, round(r + shift, 3), n + i, therapists, LEVELS[i % 2]]
            )
    return out.getvalue().encode("utf-8")


# What must never be live: a link to, or a load from, the payloads' host.
HOST_PATTERN = re.compile(re.escape(HOST), re.IGNORECASE)
