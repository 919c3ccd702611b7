"""A small analysable coding sheet whose moderator column, levels and labels are given text,
for the tests that upload hostile text (AppTest and browser alike)."""

from __future__ import annotations

import csv
import io

import numpy as np
import openpyxl
import pandas as pd

# (study, es_id, r, n, therapists): seven studies, three with two effect sizes each.
ROWS = [
    (1, 1, 0.30, 50, 5),
    (1, 2, 0.22, 50, 5),
    (2, 1, 0.20, 60, 6),
    (2, 2, 0.28, 60, 6),
    (3, 1, 0.35, 45, 9),
    (4, 1, 0.25, 80, 4),
    (4, 2, 0.18, 80, 4),
    (5, 1, 0.15, 120, 30),
    (6, 1, 0.40, 36, 3),
    (7, 1, 0.33, 70, 7),
]


def coding_sheet(column: str, levels: tuple[str, str], labels: list[str]) -> bytes:
    """CSV bytes: moderator ``column`` holds ``levels[0]`` in even studies (3) and ``levels[1]``
    in odd ones (4, so it is the default reference level); the labels cycle through ``labels``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["study", "es_id", "label", "r", "n", "n_therapists", column])
    for i, (study, es, r, n, therapists) in enumerate(ROWS):
        writer.writerow([study, es, labels[i % len(labels)], r, n, therapists, levels[study % 2]])
    return out.getvalue().encode()


# -- a messy sheet and its clean twin (issue 20) ----------------------------------------------
def twin_sheets(seed: int = 20) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A clean coding sheet and the same data written the way real sheets are (seeded).

    The messy twin has spelling variants of levels ('Patient', 'PATIENT', 'rct'), missing codes
    ('n.r.', 'NR', 'not reported') where the clean sheet has empty cells, and every fifth
    effect size as Fisher's z with its standard error instead of r and n (z = atanh(r) and
    SE = 1/sqrt(n - 3) in full precision, so both sheets give the same yi and vi).
    """
    rng = np.random.default_rng(seed)
    studies = 24
    sizes = rng.integers(2, 5, studies)
    study = np.repeat(np.arange(1, studies + 1), sizes)
    k = len(study)
    patients = rng.integers(40, 300, studies)[study - 1]
    n = np.maximum(patients - rng.integers(0, 20, k), 10)
    therapists = rng.integers(2, 30, studies).astype(object)[study - 1]
    no_count = np.isin(study, [3, 11, 17])
    therapists[no_count] = None
    rater = rng.choice(["patient", "therapist", "observer"], k, p=[0.5, 0.3, 0.2])
    design = rng.choice(["RCT", "naturalistic"], studies, p=[0.6, 0.4])[study - 1]
    r = np.round(0.25 + rng.normal(0, 0.1, k), 3)
    clean = pd.DataFrame(
        {
            "Study": [f"Study {s:02d}" for s in study],
            "ES": np.concatenate([np.arange(1, size + 1) for size in sizes]),
            "r": r.astype(object),
            "n": n.astype(object),
            "z": [None] * k,
            "SE": [None] * k,
            "Patients": patients,
            "Therapists": therapists,
            "Rater": rater.astype(object),
            "Design": design.astype(object),
        }
    )
    messy = clean.copy()
    codes = ["n.r.", "NR", "not reported"]
    messy["Therapists"] = [
        codes[i % 3] if value is None else value for i, value in enumerate(therapists)
    ]
    patient_rows = np.flatnonzero(rater == "patient")
    messy.loc[patient_rows[::4], "Rater"] = "Patient"
    messy.loc[patient_rows[1::6], "Rater"] = "PATIENT"
    rct_rows = np.flatnonzero(design == "RCT")
    messy.loc[rct_rows[::5], "Design"] = "rct"
    for row in range(0, k, 5):
        messy.loc[row, ["r", "n"]] = ["n.r.", "n.r."]
        messy.loc[row, "z"] = float(np.arctanh(r[row]))
        messy.loc[row, "SE"] = float(1 / np.sqrt(n[row] - 3))
    return clean, messy


def sheet_bytes(frame: pd.DataFrame) -> bytes:
    """CSV bytes of a sheet; floats in full precision (repr), empty cells for None."""
    return frame.to_csv(index=False, float_format=repr).encode("utf-8")


def two_sheet_workbook(frame: pd.DataFrame) -> bytes:
    """An .xlsx with the coding sheet first and a notes sheet after it."""
    workbook = openpyxl.Workbook()
    coding = workbook.active
    coding.title = "coding"
    coding.append(list(frame.columns))
    for row in frame.itertuples(index=False):
        coding.append([None if value is None else _plain(value) for value in row])
    notes = workbook.create_sheet("notes")
    notes.append(["This sheet holds notes, not effect sizes."])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
