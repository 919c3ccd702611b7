"""Render every figure of alliance_core.figures to artifacts/figures/ for a visual check.

    .venv/bin/python scripts/render_figures.py            # PNG and SVG
    .venv/bin/python scripts/render_figures.py --png-only

Data: the bundled data/alliance_simulated.csv if it exists, otherwise the same simulation
drawn afresh (alliance_core.teaching.simulate). PNG/SVG export needs a Chromium-family browser
(BROWSER_PATH, or chromium on PATH); see alliance_core.figures.export_figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import alliance_core as ac  # noqa: E402
from alliance_core import figures  # noqa: E402

OUT = ROOT / "artifacts" / "figures"
DATA = ROOT / "data" / "alliance_simulated.csv"


def load_data() -> pd.DataFrame:
    if DATA.exists():
        df = pd.read_csv(DATA)
    else:
        from alliance_core.teaching.simulate import simulate_meta_analysis

        df = simulate_meta_analysis()
    dat = ac.escalc(df, r="r", n="n", measure="ZCOR")
    dat["log_ptr"] = np.log(dat["ptr"])
    return dat


def build(dat: pd.DataFrame) -> dict[str, object]:
    """The figures to look at: each builder with its main options."""
    raters = {"alliance_rater": "patient"}
    overall = ac.fit(dat, cluster="study")
    ptr_model = ac.fit(dat, moderators=["ptr", "alliance_rater"], reference=raters, cluster="study")
    log_model = ac.fit(
        dat,
        moderators=["log_ptr", "alliance_rater", "design"],
        reference={**raters, "design": "other"},
        cluster="study",
    )
    first_per_study = dat.groupby("study", sort=False).head(1)
    two_level = ac.fit(first_per_study)
    small = ac.fit(first_per_study.head(25))
    profiles = [
        {"name": "Patient-rated, RCT", "values": {"alliance_rater": "patient", "design": "RCT"}},
        {"name": "Observer-rated, RCT", "values": {"alliance_rater": "observer", "design": "RCT"}},
        {"name": "Therapist-rated, other", "values": {"alliance_rater": "therapist"}},
    ]
    return {
        "forest_three_level": figures.forest_figure(overall, subgroup="alliance_rater"),
        "forest_by_ptr_moderated": figures.forest_figure(ptr_model, sort_by="ptr"),
        "forest_small_all_es": figures.forest_figure(
            ac.fit(dat[dat["study"] <= 8], cluster="study"),
            show_all_effect_sizes=True,
            sort_by="year",
        ),
        "forest_two_level_small": figures.forest_figure(small, sort_by="precision"),
        "funnel_three_level": figures.funnel_figure(overall, color_by_study=True),
        "funnel_two_level_z": figures.funnel_figure(
            two_level,
            scale="z",
            egger_line={"intercept": float(two_level.beta[0]) - 0.2, "slope": 1.5},
            imputed=pd.DataFrame({"yi": [0.05, 0.1], "vi": [0.02, 0.04]}),
            adjusted_estimate=float(two_level.beta[0]) - 0.03,
        ),
        "funnel_residuals": figures.funnel_figure(ptr_model),
        "ptr_curve_raw": figures.ptr_curve_figure(ptr_model, color_by="alliance_rater"),
        "ptr_curve_log_profiles": figures.ptr_curve_figure(
            log_model, scale="log", profiles=profiles, color_by="alliance_rater"
        ),
        "ptr_curve_log_plain": figures.ptr_curve_figure(log_model, scale="log"),
        "readout": figures.ptr_slope_readout(ptr_model),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png-only", action="store_true", help="skip the SVG files")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    built = build(load_data())
    print(built.pop("readout").sentence)
    formats = ("png",) if args.png_only else ("png", "svg")
    with figures.export_session():
        for name, fig in built.items():
            for fmt in formats:
                start = time.perf_counter()
                path = OUT / f"{name}.{fmt}"
                path.write_bytes(figures.export_figure(fig, fmt))
                print(f"{path.relative_to(ROOT)}  ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
