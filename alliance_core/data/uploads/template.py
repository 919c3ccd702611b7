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
    "patients",
    "n_therapists",
    "alliance_rater",
    "outcome_rater",
    "alliance_measure",
    "design",
    "pd",
)

_TEMPLATE_ROWS = (
    ("1", "1", "Example & Colleague (2001)", "2001", "0.31", "48", "52", "6", "patient",
     "patient", "WAI", "RCT", "20"),
    ("1", "2", "Example & Colleague (2001)", "2001", "0.22", "45", "52", "6", "therapist",
     "observer", "WAI", "RCT", "20"),
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
| `study` | identifies the study (number or short text, read as typed: `1.1` and `1.10`, or `01` and `1`, are different studies); rows of one study share it |
| `es_id` | identifies the effect size within its study (1, 2, …) |
| `label` | how the study is shown in plots, e.g. "Smith & Lee (2004)"; without it, the study (a bare number becomes "Study 3") |
| `year` | publication year |
| `r` | the alliance–outcome correlation, strictly between −1 and 1; positive when a better alliance goes with a better outcome |
| `n` | number of patients this correlation is based on (more than 3); may differ between the effect sizes of a study |
| `patients` | *study patients*: all patients of the study (optional; for PTR) |
| `n_therapists` | number of therapists in the study (at least 1, at most the patients) |
| `alliance_rater` | who rated the alliance: patient, therapist, observer or other |
| `outcome_rater` | who rated the outcome: patient, therapist, observer or other |
| `alliance_measure` | alliance instrument, e.g. WAI, CALPAS, HAq, other |
| `design` | research design: RCT or other |
| `pd` | percentage of patients with a personality disorder (0–100) |

**PTR.** The Patient–Therapist Ratio is a property of the study: PTR = study patients /
therapists when a study-patients column (`patients`) is chosen, otherwise `n` / `n_therapists`.
A ready-made `PTR` column may be chosen instead (role *PTR*). PTR that differs between rows of
one study is listed as a data problem with its row and column.

**Effect sizes in other forms.** Instead of `r` with `n`: Fisher's z (`z`) with `n`
(vi = 1/(n − 3)); an effect size `yi` with its sampling variance `vi`; or `yi` with its standard
error `sei` (vi = sei²). The variance is the standard error squared: a `vi` column whose values
look like standard errors gets a warning. For `yi`, say which measure the table holds
(correlation, standardized mean difference, log odds ratio, other). Forms may be mixed row by
row: map every form your sheet uses (say `r` and `n`, `z` and its standard error `se`) and each
row takes the first complete one (r and n; z and its SE or variance; z and n; yi and vi; yi and
sei). The Data page lists each row's form and flags a row whose two forms disagree (r and z
that do not match). `yi` is pooled with correlations only when declared a correlation on
Fisher's z scale.

**Missing values.** In every column, empty cells and `NA`, `N/A`, `n.a.`, `na`, `n.r.`, `NR`,
`n/r`, `not reported`, `-`, `–`, `—`, `.`, `?`, `missing`, `unknown`, `#N/A`, `NaN`, `null`,
`none` (any case, spaces ignored) are missing; the Data page lists which of them were found in
which columns, lets you add a code of your own sheet (such as `k.A.` or `-99`) and lets you
declare one a real value. A row missing an effect size, its
`n` or its study is left out and listed; a row missing only a moderator, a therapist count or
PTR is left out only of the models that use that column. Each page says how many rows its
model used and why the others were left out.

Files: CSV (comma or semicolon), TSV, or Excel .xlsx (the first sheet unless you choose another
on the Data page), up to 20 MB and 200,000 rows; at least two effect sizes. Decimal commas
("0,25") are recognised in semicolon- or tab-separated files. Row numbers in messages are
spreadsheet rows: the header is row 1, the first data row is row 2. In Excel, format the
`study` and `es_id` columns as Text before typing codes such as `1.10`: a General cell keeps
only the number (1.1), and the Data page warns about ids stored as numbers with decimals.
"""
