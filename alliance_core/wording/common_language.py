"""A correlation in common language: the binomial effect size display and r² in words.

Binomial effect size display (BESD; Rosenthal & Rubin, 1982, Journal of Educational Psychology
74, 166–169): a correlation r between a two-valued predictor and a two-valued outcome, each
split 50/50, corresponds to "success" rates of 0.5 + r/2 and 0.5 − r/2 in the two groups. For the
alliance: as if that share of patients with the stronger alliance improved, against the other
share of those with the weaker one. r² is the share of outcome variance the alliance accounts
for in a straight-line sense.
"""

from __future__ import annotations

import math

from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_number


def besd(r: float) -> tuple[float, float]:
    """(0.5 + r/2, 0.5 − r/2): the BESD success rates of the two groups."""
    r = float(r)
    if not math.isfinite(r) or not -1.0 <= r <= 1.0:
        raise AnalysisError(f"A correlation lies between −1 and 1 (got {r}).")
    return 0.5 + r / 2.0, 0.5 - r / 2.0


def _percent(share: float) -> str:
    return f"{format_number(100 * share, 0)} %"


def r_in_words(r: float) -> str:
    """One sentence: the BESD of ``r`` and r² as a share of outcome differences."""
    stronger, weaker = besd(r)
    return (
        f"In common language, r = {format_number(r)} is as if {_percent(stronger)} of patients "
        f"with the stronger alliance improved against {_percent(weaker)} of those with the "
        f"weaker one (binomial effect size display); r² = {format_number(r * r)}, so the "
        f"alliance accounts for {_percent(r * r)} of the differences in outcome."
    )


def r_in_brief(r: float) -> str:
    """The same in a phrase for a readout: "r = 0.28: as if 64 % vs 36 % improved, r² = 8 %"."""
    stronger, weaker = besd(r)
    return (
        f"r = {format_number(r)}: as if {_percent(stronger)} vs {_percent(weaker)} improved "
        f"(BESD), r² = {_percent(r * r)} of outcome differences"
    )
