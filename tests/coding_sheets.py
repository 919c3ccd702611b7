"""A small analysable coding sheet whose moderator column, levels and labels are given text,
for the tests that upload hostile text (AppTest and browser alike)."""

from __future__ import annotations

import csv
import io

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
