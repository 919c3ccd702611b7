"""The Moderators page's cluster wild bootstrap tests as rows of the results file.

The page runs ``res.wild_bootstrap(terms, R, seed, type=...)`` on request (Joshi, Pustejovsky
& Beretvas, 2022; wildmeta ``Wald_test_cwb``) and keeps each result per state and test; the
results of the state handed over are a mapping test label -> ``WildBootstrapResult``. Each
test gives three rows (section "wild bootstrap"): the observed Naive-F statistic with its
numerator df (the number of coefficients tested; the row's name carries the working
covariance type), the bootstrap p (its name carries the auxiliary weights, the residual
adjustment and the seed) and the number of replicates (estimate).
"""

from __future__ import annotations

from collections.abc import Mapping

from alliance_core.model.wild_bootstrap import WildBootstrapResult

WILD_SECTION = "wild bootstrap"


def f_name(label: str, cwb: WildBootstrapResult) -> str:
    return f"{label}: F ({cwb.type})"


def p_name(label: str, cwb: WildBootstrapResult) -> str:
    seed = "no seed" if cwb.seed is None else f"seed {cwb.seed}"
    return f"{label}: p ({cwb.auxiliary} weights, {cwb.adjust} residuals, {seed})"


def replicates_name(label: str) -> str:
    return f"{label}: replicates"


def wild_rows(results: Mapping[str, WildBootstrapResult]) -> list[dict]:
    """Per test (in the mapping's order): its F row, its p row and its replicates row."""
    rows: list[dict] = []
    for label, cwb in results.items():
        rows.append(
            {
                "section": WILD_SECTION,
                "name": f_name(label, cwb),
                "statistic": cwb.statistic,
                "df": len(cwb.terms),
            }
        )
        rows.append({"section": WILD_SECTION, "name": p_name(label, cwb), "pval": cwb.pval})
        rows.append({"section": WILD_SECTION, "name": replicates_name(label), "estimate": cwb.R})
    return rows
