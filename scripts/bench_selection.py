"""Benchmark of the step-function selection model:
``python scripts/bench_selection.py [--repeats 5] [--R 1999] [--no-r] [--coverage 0]``.

On the default data (811 effect sizes in 152 studies, Fisher z):

* the 3PSM (one cut at .025) with cluster-robust SEs, ``ac.selmodel(res, cluster="study")``
  (target <= 0.5 s), and the same for effect sizes treated as independent;
* the 3PSM with ``R`` multinomial cluster bootstraps and a progress bar (target <= 20 s for
  1,999 on this 2-core machine);
* in the same run, R's metafor ``selmodel(rma(yi, vi, method = "ML"), type = "stepfun",
  steps = .025)`` and, when installed, metaselection's ``selection_model(..., cluster = study,
  estimator = "CML", vcov_type = "robust", priors = NULL)`` (and its bootstrap with the same
  R), with the ratios;
* ``--coverage N``: N seeded simulated data sets (60 studies with 1-6 effect sizes each, a
  3PSM selection with weight 0.5, true mean 0.15) and the share of 95% intervals of the mean
  (sandwich and cluster-bootstrap percentile, ``--coverage-R`` replicates) that contain the
  truth.

Prints figures; asserts nothing (no timed asserts anywhere in the tests).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import alliance_core as ac  # noqa: E402


def default_data() -> pd.DataFrame:
    raw = pd.read_csv(ROOT / "data" / "alliance_simulated.csv")
    return ac.escalc(raw, r="r", n="n", measure="ZCOR")


def median_seconds(run, repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def progress_bar(done: int, total: int) -> None:
    if done == total or done % max(1, total // 50) == 0:
        filled = int(40 * done / total)
        sys.stdout.write(f"\r  [{'#' * filled}{'.' * (40 - filled)}] {done}/{total}")
        sys.stdout.flush()
        if done == total:
            sys.stdout.write("\n")


def time_r(data: pd.DataFrame, repeats: int, R: int) -> dict | None:
    # R: metaselection bootstrap replicates (its replicates are far slower than the
    # engine's, so the ratio is taken per replicate from a shorter run)
    """metafor selmodel (and metaselection, if installed) timed in one Rscript run."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "data.csv"
        data[["study", "yi", "vi"]].to_csv(csv, index=False)
        script = f"""
suppressMessages(library(metafor))
d <- read.csv("{csv}")
fit <- rma(yi, vi, data = d, method = "ML")
run <- function() selmodel(fit, type = "stepfun", steps = 0.025)
invisible(run())
t <- sapply(seq_len({repeats}), function(i) system.time(run())[["elapsed"]])
out <- list(metafor = median(t), metafor_version = as.character(packageVersion("metafor")),
            metafor_estimate = unname(coef(run())$beta[1]))
if (requireNamespace("metaselection", quietly = TRUE)) {{
  suppressMessages(library(metaselection))
  d$sei <- sqrt(d$vi)
  ms <- function() selection_model(data = d, yi = yi, sei = sei, cluster = study,
                                   selection_type = "step", steps = 0.025,
                                   estimator = "CML", vcov_type = "robust", priors = NULL)
  invisible(ms())
  t2 <- sapply(seq_len({repeats}), function(i) system.time(ms())[["elapsed"]])
  out$metaselection <- median(t2)
  out$metaselection_estimate <- ms()$est$Est[1]
  if ({R} > 0) {{
    tb <- system.time(try(selection_model(data = d, yi = yi, sei = sei, cluster = study,
                                          selection_type = "step", steps = 0.025,
                                          estimator = "CML", vcov_type = "robust",
                                          priors = NULL, bootstrap = "multinomial",
                                          R = {R}, CI_type = "none"), silent = TRUE))
    out$metaselection_bootstrap <- tb[["elapsed"]]
  }}
}}
cat(jsonlite::toJSON(out, auto_unbox = TRUE, digits = NA))
"""
        done = subprocess.run(
            ["Rscript", "-e", script], capture_output=True, text=True, timeout=3600
        )
        if done.returncode != 0:
            print("  R failed:", done.stderr.strip().splitlines()[-1:])
            return None
        return json.loads(done.stdout.strip().splitlines()[-1])


def simulate_clustered(seed: int, studies: int = 60, weight: float = 0.5) -> pd.DataFrame:
    """Studies with 1-6 effect sizes (sigma2_study = 0.02, sigma2_es = 0.01, mean 0.15);
    each non-significant effect size (one-sided p > .025) is kept with probability
    ``weight``."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(studies):
        m = rng.integers(1, 7)
        n = rng.integers(30, 301)
        v = 1.0 / (n - 3)
        y = 0.15 + rng.normal(0, np.sqrt(0.02)) + rng.normal(0, np.sqrt(0.01 + v), m)
        keep = (stats.norm.sf(y / np.sqrt(v)) <= 0.025) | (rng.uniform(size=m) < weight)
        rows += [(s, yi, v) for yi in y[keep]]
    return pd.DataFrame(rows, columns=["study", "yi", "vi"])


def coverage(n: int, R: int) -> None:
    hits_sandwich = hits_boot = used = 0
    start = time.perf_counter()
    for seed in range(n):
        dat = simulate_clustered(seed)
        try:
            sel = ac.selmodel(
                ac.fit(dat, cluster="study"),
                cluster="study",
                bootstrap="multinomial",
                R=R,
                seed=seed,
            )
        except ac.AnalysisError:
            continue
        used += 1
        row = sel.coefficients.iloc[0]
        hits_sandwich += row["ci_lb"] <= 0.15 <= row["ci_ub"]
        hits_boot += row["boot_lb"] <= 0.15 <= row["boot_ub"]
    took = time.perf_counter() - start
    print(f"  {used} of {n} data sets fitted ({took:.0f} s)")
    if used:
        print(f"  coverage of the mean, sandwich 95% CI:  {hits_sandwich / used:.3f}")
        print(f"  coverage of the mean, bootstrap 95% CI: {hits_boot / used:.3f} (R = {R})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--R", type=int, default=1999)
    parser.add_argument("--no-r", action="store_true")
    parser.add_argument("--r-bootstrap-R", type=int, default=99)
    parser.add_argument("--coverage", type=int, default=0)
    parser.add_argument("--coverage-R", type=int, default=199)
    args = parser.parse_args()

    data = default_data()
    res3 = ac.fit(data, cluster="study")
    res2 = ac.fit(data)
    print(f"Default data: k = {res3.k} effect sizes in {res3.n_studies} studies")

    robust_s = median_seconds(
        lambda: ac.selmodel(res3, steps=[0.025], cluster="study"), args.repeats
    )
    independent_s = median_seconds(lambda: ac.selmodel(res2, steps=[0.025]), args.repeats)
    sel = ac.selmodel(res3, steps=[0.025], cluster="study")
    print(f"3PSM, cluster-robust SEs:          {robust_s * 1000:8.1f} ms  (target <= 500 ms)")
    print(f"3PSM, independent (as metafor):    {independent_s * 1000:8.1f} ms")
    print(f"  adjusted mean {sel.estimate:.4f} (SE {sel.coefficients['se'].iloc[0]:.4f})")

    boot_s = None
    if args.R > 0:
        print(f"3PSM with {args.R} cluster bootstraps:")
        start = time.perf_counter()
        cpu = time.process_time()
        booted = ac.selmodel(
            res3,
            steps=[0.025],
            cluster="study",
            bootstrap="multinomial",
            R=args.R,
            seed=1,
            progress=progress_bar,
        )
        boot_s = time.perf_counter() - start
        cpu_s = time.process_time() - cpu
        print(
            f"  {boot_s:8.2f} s wall, {cpu_s:.2f} s CPU of this process (target <= 20 s; "
            f"{booted.bootstrap.failed} failed; the wall time grows with the machine's load)"
        )

    if not args.no_r:
        r = time_r(data, args.repeats, args.r_bootstrap_R)
        if r is not None:
            print(
                f"metafor {r['metafor_version']} selmodel (independent): {r['metafor'] * 1000:8.1f} ms"
                f"  ratio metafor / engine = {r['metafor'] / independent_s:.1f}"
            )
            if "metaselection" in r:
                print(
                    f"metaselection CML robust:          {r['metaselection'] * 1000:8.1f} ms"
                    f"  ratio metaselection / engine = {r['metaselection'] / robust_s:.1f}"
                )
                print(
                    f"  metaselection mean {r['metaselection_estimate']:.6f}, "
                    f"engine {sel.estimate:.6f}"
                )
            if "metaselection_bootstrap" in r and boot_s:
                per_r = r["metaselection_bootstrap"] / args.r_bootstrap_R
                per_engine = boot_s / args.R
                print(
                    f"metaselection bootstrap (R = {args.r_bootstrap_R}): "
                    f"{r['metaselection_bootstrap']:8.2f} s = {per_r * 1000:.0f} ms per "
                    f"replicate; engine {per_engine * 1000:.1f} ms; ratio {per_r / per_engine:.1f}"
                )
    if args.coverage:
        print(f"Coverage simulation ({args.coverage} data sets, true mean 0.15):")
        coverage(args.coverage, args.coverage_R)


if __name__ == "__main__":
    main()
