"""Benchmark: the cluster wild bootstrap of the default CHE model, against wildmeta.

    PYTHONPATH=. python scripts/bench_wild_bootstrap.py [--replicates 1999] [--r-replicates 5]
        [--r-libs /tmp/rlib]

Fits the default dataset's CHE model (rho = 0.6, REML, alliance_rater as the one categorical
moderator; 811 effect sizes, 152 studies), times ``res.wild_bootstrap(["alliance_rater"],
R=...)`` with the CR0 statistic (wildmeta's default) and with the CR2 statistic (the
dashboard's choice under CR2 inference) and, when R with wildmeta is available (``--r-libs``
names its library), times wildmeta's ``Wald_test_cwb`` on the same data in the same run
(fewer replicates: it is slow) and reports the time per replicate of each and their ratio.
Without wildmeta it says so. The load average is printed first: on a shared machine the
timings are noisy. No assertion on time: the numbers are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import alliance_core as ac

R_CODE = r"""
suppressPackageStartupMessages({library(metafor); library(clubSandwich); library(wildmeta)})
d <- read.csv(commandArgs(TRUE)[1], stringsAsFactors = FALSE)
R <- as.integer(commandArgs(TRUE)[2])
d$alliance_rater <- factor(d$alliance_rater)
V <- vcalc(vi, cluster = study, obs = es_id, rho = 0.6, data = d)
fit <- rma.mv(yi, V, mods = ~ alliance_rater, random = ~ 1 | study/es_id, data = d)
start <- proc.time()[["elapsed"]]
cwb <- Wald_test_cwb(fit, constraints = constrain_zero(2:4), R = R, cluster = d$study, seed = 1)
elapsed <- proc.time()[["elapsed"]] - start
cat(sprintf("%.6f %.6f %.6f\n", elapsed, attr(cwb, "original"), cwb$p_val))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicates", type=int, default=1999)
    parser.add_argument("--r-replicates", type=int, default=5)
    parser.add_argument("--r-libs", default=os.environ.get("R_LIBS", ""))
    args = parser.parse_args()

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average (1, 5, 15 min): {load} on {os.cpu_count()} cores")
    data = ac.escalc(ac.load_dataset(ac.DEFAULT_DATASET))
    res = ac.fit(data, moderators=["alliance_rater"], cluster="study", rho=0.6)
    print(f"model: k = {res.k}, studies = {res.n_studies}, p = {res.p}")
    timings = {}
    for kind in ("CR0", "CR2"):
        start, cpu = time.perf_counter(), time.process_time()
        cwb = res.wild_bootstrap(["alliance_rater"], R=args.replicates, seed=1, type=kind)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        timings[kind] = (elapsed, cwb)
        print(
            f"alliance_core, type {kind}: {args.replicates} replicates in {elapsed:.1f} s "
            f"({elapsed / args.replicates * 1e3:.2f} ms each; target <= 15 s), "
            f"{cpu:.1f} s CPU"
        )
        print(f"  {cwb}")
    elapsed, cwb = timings["CR0"]
    per = elapsed / args.replicates

    if shutil.which("Rscript") is None:
        print("Rscript not found: wildmeta not timed")
        return
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "data.csv"
        script = Path(tmp) / "bench.R"
        data.loc[res.data.index, ["yi", "vi", "study", "es_id", "alliance_rater"]].to_csv(
            csv, index=False
        )
        script.write_text(R_CODE)
        env = dict(os.environ, R_LIBS=args.r_libs) if args.r_libs else None
        run = subprocess.run(
            ["Rscript", str(script), str(csv), str(args.r_replicates)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    if run.returncode != 0:
        if "no package called" in run.stderr and "wildmeta" in run.stderr:
            print("wildmeta is not installed (pass --r-libs DIR): not timed, no ratio")
        else:
            print("wildmeta not timed:", run.stderr.strip().splitlines()[-1:])
        return
    r_elapsed, r_statistic, r_pval = (float(x) for x in run.stdout.split())
    r_per = r_elapsed / args.r_replicates
    print(
        f"wildmeta: {args.r_replicates} replicates in {r_elapsed:.1f} s ({r_per * 1e3:.1f} ms "
        f"each, with its null-model fit and observed test); observed F = {r_statistic:.6f} "
        f"(alliance_core {cwb.statistic:.6f}, relative difference "
        f"{abs(cwb.statistic / r_statistic - 1):.1e}); p = {r_pval:.4f}"
    )
    print(f"speed-up per replicate, CR0: {r_per / per:.0f}x (target >= 20x)")
    np.testing.assert_allclose(cwb.statistic, r_statistic, rtol=1e-6)


if __name__ == "__main__":
    main()
