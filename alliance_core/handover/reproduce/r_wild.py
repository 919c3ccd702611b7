"""The metafor script's cluster wild bootstrap part: the observed F checked, the p said.

For each of the Moderators page's wild bootstrap tests the script computes the observed
statistic with clubSandwich, ``Wald_test(res, constraints = constrain_zero(<indices>), vcov =
vcovCR(res, cluster, type = "CR0"/"CR2"), test = "Naive-F")``, and compares F and its
numerator df with the dashboard's row. The bootstrap p is not recomputed: wildmeta's
``Wald_test_cwb`` refits the model for every replicate (about 90 s per replicate on the
default data) and draws its weights with R's generator, so its p differs from the
dashboard's by Monte Carlo error. The script prints the p and the replicates as SKIPPED with
that reason and a commented ``wildmeta::Wald_test_cwb(...)`` call to run by hand; those
rows are left out of the count (never counted as agreeing).
"""

from __future__ import annotations

import math

from alliance_core.errors import AnalysisError
from alliance_core.handover.reproduce.common import ModelCode, r_string
from alliance_core.handover.results_wild import WILD_SECTION


def _cluster(code: ModelCode, names: dict[str, str]) -> str:
    res = code.res
    if code.robust is not None:
        return f"{code.frame}${names[code.robust.cluster]}"
    if res.is_three_level:
        return f"{code.frame}${names[res.cluster]}"
    raise AnalysisError("The wild bootstrap of a two-level model needs the robust clusters.")


def wild_objects(code: ModelCode) -> list[str]:
    """The R object of each test, in the order of the results rows."""
    return [f"cwb_{i}" for i in range(1, len(code.wild_bootstrap or {}) + 1)]


def r_wild(code: ModelCode, names: dict[str, str]) -> list[str]:
    if not code.wild_bootstrap:
        return []
    cluster = _cluster(code, names)
    lines = [
        "## 6f. Cluster wild bootstrap tests ------------------------------------------",
        "# The dashboard's cluster wild bootstrap tests (Joshi, Pustejovsky & Beretvas, 2022).",
        "# Checked here: the observed Naive-F statistic (clubSandwich). The bootstrap p is not",
        "# recomputed: wildmeta refits the model for every replicate (about 90 s per replicate",
        "# on the default data) and draws its weights with R's generator, not the dashboard's;",
        "# run the commented wildmeta line to compare the p within Monte Carlo error.",
        "suppressPackageStartupMessages(library(clubSandwich))",
    ]
    for obj, (label, cwb) in zip(wild_objects(code), code.wild_bootstrap.items(), strict=True):
        indices = code.res.design.coefficient_indices(list(cwb.terms))
        constraints = "c(" + ", ".join(str(i + 1) for i in indices) + ")"
        seed = "NULL" if cwb.seed is None else str(int(cwb.seed))
        pval = "NA" if math.isnan(cwb.pval) else f"{cwb.pval:.6g}"
        lines += [
            f"# {r_string(label)}:",
            f"{obj} <- Wald_test(res, constraints = constrain_zero({constraints}),",
            f"  vcov = vcovCR(res, cluster = {cluster}, type = {r_string(cwb.type)}),",
            '  test = "Naive-F")',
            f"print({obj})",
            f"# wildmeta::Wald_test_cwb(res, constraints = constrain_zero({constraints}),",
            f"#   R = {int(cwb.R)}, cluster = {cluster},",
            f"#   auxiliary_dist = {r_string(cwb.auxiliary)}, adjust = {r_string(cwb.adjust)},",
            f'#   type = {r_string(cwb.type)}, test = "Naive-F", seed = {seed})',
            f'cat("SKIPPED: the wild bootstrap p of", {r_string(label)}, "(dashboard p =",',
            f'    {pval}, "from {int(cwb.R)} replicates) is not recomputed: wildmeta refits",',
            '    "the model for every replicate; see the commented wildmeta line.\\n")',
        ]
    return lines


def wild_expressions(code: ModelCode) -> list[str]:
    """Per test its three rows: F (compared), p and replicates (skipped)."""
    out = []
    for obj in wild_objects(code):
        out += [f"num_row(statistic = {obj}$Fstat, df = {obj}$df_num)", "num_row()", "num_row()"]
    return out


def r_wild_comparison(code: ModelCode) -> list[str]:
    """After ``skipped`` is set up: the p and replicates rows are left out of the count."""
    if not code.wild_bootstrap:
        return []
    return [
        "# The wild bootstrap p and replicates are not recomputed (see SKIPPED above).",
        f'skipped <- skipped | (dashboard$section == "{WILD_SECTION}" &',
        '                      is.na(theirs[, "statistic"]))',
    ]
