"""The Moderators page's heterogeneity model as rows of the results file.

For a two-level model estimated by ML or REML with PTR, the page fits the location-scale model
``refit_with(res, terms, res.method, scale=[ptr])`` (metafor ``rma(yi, vi, mods, scale = ~
ptr)``): log tau2 = a0 + a1 ptr. Its rows (section "location-scale"): each scale coefficient
with se, z, p and CI, the likelihood-ratio test against one tau2 for all studies, and the
log-likelihood.
"""

from __future__ import annotations

from alliance_core.model.location_scale import LocationScaleResult

SCALE_SECTION = "location-scale"


def scale_rows(ls: LocationScaleResult) -> list[dict]:
    rows: list[dict] = []
    for term, row in ls.scale_coefficients.iterrows():
        rows.append(
            {
                "section": SCALE_SECTION,
                "name": f"scale {term}",
                "estimate": row["estimate"],
                "se": row["se"],
                "statistic": row["statistic"],
                "pval": row["pval"],
                "ci_lb": row["ci_lb"],
                "ci_ub": row["ci_ub"],
            }
        )
    rows.append(
        {
            "section": SCALE_SECTION,
            "name": "LRT (one tau2 for all)",
            "statistic": ls.LRT,
            "df": ls.LRT_df,
            "pval": ls.LRT_pval,
        }
    )
    rows.append({"section": SCALE_SECTION, "name": "logLik", "estimate": ls.loglik})
    return rows
