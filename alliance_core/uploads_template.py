"""The coding-sheet template and the format description the Data page shows."""

from __future__ import annotations

import csv
import io

TEMPLATE_COLUMNS = (
    "study",
    "es_id",
    "label",
    "year",
    "r",
    "n",
    "n_therapists",
    "alliance_rater",
    "outcome_rater",
    "alliance_measure",
    "design",
    "pd",
)

_TEMPLATE_ROWS = (
    ("1", "1", "Example & Colleague (2001)", "2001", "0.31", "48", "6", "patient", "patient",
     "WAI", "RCT", "20"),
    ("1", "2", "Example & Colleague (2001)", "2001", "0.22", "48", "6", "therapist", "observer",
     "WAI", "RCT", "20"),
)  # fmt: skip


def template_csv() -> bytes:
    """A CSV coding sheet with the expected columns and two made-up example rows (UTF-8)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TEMPLATE_COLUMNS)
    writer.writerows(_TEMPLATE_ROWS)
    return buffer.getvalue().encode("utf-8")


FORMAT_DESCRIPTION = """\
**One row per effect size.** A study that reports several alliance–outcome correlations (for
example patient- and therapist-rated alliance) has several rows with the same `study` and
different `es_id`.

| column | meaning |
| --- | --- |
| `study` | identifies the study (number or short text); rows of one study share it |
| `es_id` | identifies the effect size within its study (1, 2, …) |
| `label` | how the study is shown in plots, e.g. "Smith & Lee (2004)" |
| `year` | publication year |
| `r` | the alliance–outcome correlation, strictly between −1 and 1; positive when a better alliance goes with a better outcome |
| `n` | number of patients the correlation is based on (more than 3) |
| `n_therapists` | number of therapists who treated those patients (at least 1, at most `n`) |
| `alliance_rater` | who rated the alliance: patient, therapist, observer or other |
| `outcome_rater` | who rated the outcome: patient, therapist, observer or other |
| `alliance_measure` | alliance instrument, e.g. WAI, CALPAS, HAq, other |
| `design` | research design: RCT or other |
| `pd` | percentage of patients with a personality disorder (0–100) |

The Patient–Therapist Ratio is computed as PTR = `n` / `n_therapists`. Correlations are analysed
as Fisher's z = atanh(r) with sampling variance 1/(n − 3). Instead of `r` and `n`, a precomputed
effect size `yi` with its sampling variance `vi` may be given.

Files: CSV (comma or semicolon), TSV, or Excel .xlsx (first sheet unless another is chosen), up
to 20 MB and 200,000 rows. Decimal commas ("0,25") are recognised in semicolon- or
tab-separated files. Empty cells and NA count as missing; rows missing a value in a column used
by the analysis are left out and listed. Row numbers in messages are spreadsheet rows: the
header is row 1, the first data row is row 2.
"""
