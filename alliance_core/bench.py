"""Benchmark of the engine: ``python -m alliance_core.bench [--quick] [--no-r]``.

Times, on the bundled default dataset (shaped like the 2021 alliance meta-analysis: about 150
studies and 830 effect sizes) and in one run:

* the three-level REML fit with 8 moderator columns, and the same fit with its derived
  statistics (pseudo-R^2, which refits without moderators);
* the two-level REML fit with the same moderators (and with R^2 and the Q-profile interval);
* metafor's ``rma.mv(..., sparse = TRUE)`` and ``rma()`` on the same data, when Rscript with
  metafor is available, and the speed-up ratios;
* scale: three-level REML on up to 100,000 effect sizes in 20,000 studies, with time and peak
  traced memory, to show that both grow linearly in k;
* dependent effect sizes: the CHE working model (rho = 0.6) with all moderators against
  metafor's ``rma.mv(yi, V = vcalc(...), sparse = TRUE)``, and a CHE fit on 100,000 effect sizes.

It prints figures; it asserts nothing (performance targets live in the issues, not in tests).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

import alliance_core as ac

MODERATORS = [
    "log_ptr",
    "alliance_rater",
    "outcome_rater",
    "alliance_measure",
    "design",
    "pd_share",
    "year",
    "n",
]
R_FORMULA = "~ " + " + ".join(MODERATORS)
CHE_RHO = 0.6  # the within-study sampling correlation of the CHE benchmark fits


def benchmark_data() -> pd.DataFrame:
    """The default dataset with Fisher z effect sizes and log PTR."""
    raw = ac.load_dataset(ac.DEFAULT_DATASET)
    data = ac.escalc(raw, r="r", n="n")
    data["log_ptr"] = np.log(data["ptr"])
    return data


def median_ms(function, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def time_metafor(data: pd.DataFrame, repeats: int) -> dict[str, float] | None:
    """Median seconds of rma.mv(sparse=TRUE) and rma() on the same data, via Rscript."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "data.csv"
        data.to_csv(csv, index=False)
        script = f"""
suppressMessages(library(metafor))
d <- read.csv("{csv}", stringsAsFactors = FALSE)
d$es_row <- seq_len(nrow(d))
mv <- function() rma.mv(yi, vi, mods = {R_FORMULA}, random = ~ 1 | study/es_row, data = d,
                        method = "REML", sparse = TRUE)
uni <- function() rma(yi, vi, mods = {R_FORMULA}, data = d, method = "REML")
V <- vcalc(vi, cluster = study, obs = es_row, rho = {CHE_RHO}, data = d)
che <- function() rma.mv(yi, V, mods = {R_FORMULA}, random = ~ 1 | study/es_row, data = d,
                         method = "REML", sparse = TRUE)
# CHE + CR2 as a reviewer asks for it: the fit (V built inside, as a user's script does) then
# robust(clubSandwich = TRUE): Satterthwaite df per coefficient and the HTZ test of moderators.
have_cs <- requireNamespace("clubSandwich", quietly = TRUE)
che_cr2 <- function() {{
  Vi <- vcalc(vi, cluster = study, obs = es_row, rho = {CHE_RHO}, data = d)
  fit <- rma.mv(yi, Vi, mods = {R_FORMULA}, random = ~ 1 | study/es_row, data = d,
                method = "REML", sparse = TRUE)
  robust(fit, cluster = d$study, clubSandwich = TRUE)
}}
invisible(mv()); invisible(uni()); invisible(che())
t_mv <- sapply(seq_len({repeats}), function(i) system.time(mv())[["elapsed"]])
t_uni <- sapply(seq_len({repeats}), function(i) system.time(uni())[["elapsed"]])
t_che <- sapply(seq_len({repeats}), function(i) system.time(che())[["elapsed"]])
t_che_cr2 <- if (have_cs) {{
  invisible(che_cr2())
  sapply(seq_len(max(1, {repeats} %/% 2)), function(i) system.time(che_cr2())[["elapsed"]])
}} else NA
cat(jsonlite::toJSON(list(rma_mv_sparse = median(t_mv), rma_uni = median(t_uni),
                          rma_mv_che_sparse = median(t_che), che_cr2 = median(t_che_cr2),
                          version = as.character(packageVersion("metafor"))), auto_unbox = TRUE))
"""
        proc = subprocess.run(
            ["Rscript", "-e", script], capture_output=True, text=True, timeout=1800
        )
        if proc.returncode != 0:
            print("metafor timing failed:", proc.stderr.strip().splitlines()[-1:])
            return None
        return json.loads(proc.stdout.strip().splitlines()[-1])


def scale_data(k_target: int, seed: int = 7) -> pd.DataFrame:
    """Simulated three-level data: about k_target effect sizes, 5 per study on average."""
    rng = np.random.default_rng(seed)
    studies = k_target // 5
    sizes = rng.integers(1, 10, studies)
    study = np.repeat(np.arange(studies), sizes)
    k = len(study)
    n = rng.integers(20, 400, studies)[study]
    vi = 1.0 / (n - 3.0)
    log_ptr = rng.normal(1.5, 1.0, studies)[study]
    yi = 0.3 - 0.03 * log_ptr + rng.normal(0, 0.1, studies)[study] + rng.normal(0, 0.07, k)
    yi += rng.normal(0, np.sqrt(vi))
    return pd.DataFrame({"study": study, "yi": yi, "vi": vi, "log_ptr": log_ptr})


def run(quick: bool, with_r: bool) -> None:
    repeats = 15 if quick else 50
    data = benchmark_data()
    k, studies = len(data), data["study"].nunique()
    print(
        f"alliance_core benchmark on the default dataset: k = {k} effect sizes in {studies} studies"
    )
    print(f"moderator columns ({len(MODERATORS)}): {', '.join(MODERATORS)}")

    def three_level():
        return ac.fit(data, moderators=MODERATORS, cluster="study", method="REML")

    def three_level_derived():
        res = three_level()
        return res.R2

    def two_level():
        return ac.fit(data, moderators=MODERATORS, method="REML")

    def che_fit():
        return ac.fit(data, moderators=MODERATORS, cluster="study", method="REML", rho=CHE_RHO)

    def two_level_derived():
        res = two_level()
        return res.R2, res.tau2_ci

    def che_cr2():
        # CHE fit, then CR2 with Satterthwaite df and the HTZ test of all moderators.
        rob = che_fit().robust(method="CR2")
        return rob.coefficients, rob.QM_pval

    res = three_level()
    print(f"three-level REML: p = {res.p} coefficients, {res.iterations} iterations")
    t3 = median_ms(three_level, repeats)
    t3d = median_ms(three_level_derived, repeats)
    t2 = median_ms(two_level, repeats)
    t2d = median_ms(two_level_derived, repeats)
    tche = median_ms(che_fit, repeats)
    tche_cr2 = median_ms(che_cr2, repeats)
    print(f"  three-level REML fit             median {t3:8.2f} ms   (target <= 10 ms)")
    print(f"  ... with pseudo-R2 (second fit)  median {t3d:8.2f} ms")
    print(f"  two-level REML fit               median {t2:8.2f} ms   (target <= 2 ms)")
    print(f"  ... with R2 and Q-profile CI     median {t2d:8.2f} ms")
    print(f"  CHE three-level REML, rho = {CHE_RHO}  median {tche:8.2f} ms")
    print(f"  ... then CR2 (df, HTZ test)      median {tche_cr2:8.2f} ms")

    if with_r:
        timing = time_metafor(data, repeats=3 if quick else 5)
        if timing is None:
            print("  metafor: Rscript with metafor not available; no ratio")
        else:
            mv_ms = 1000.0 * timing["rma_mv_sparse"]
            uni_ms = 1000.0 * timing["rma_uni"]
            print(f"  metafor {timing['version']} rma.mv(sparse=TRUE)  median {mv_ms:8.1f} ms")
            print(f"  metafor {timing['version']} rma()                median {uni_ms:8.1f} ms")
            print(
                f"  ratio three-level: {mv_ms / t3:6.0f}x faster than rma.mv (target >= 50x); "
                f"with R2 {mv_ms / t3d:6.0f}x"
            )
            print(
                f"  ratio two-level:   {uni_ms / t2:6.0f}x faster than rma(); "
                f"with R2 and CI {uni_ms / t2d:6.0f}x"
            )
            che_ms = 1000.0 * timing["rma_mv_che_sparse"]
            print(
                f"  metafor {timing['version']} rma.mv(V = vcalc(rho = {CHE_RHO}), sparse=TRUE) "
                f"median {che_ms:8.1f} ms (V built once, outside the timing)"
            )
            print(f"  ratio CHE:         {che_ms / tche:6.0f}x faster than rma.mv with V")
            if timing.get("che_cr2") is not None:
                cr2_ms = 1000.0 * timing["che_cr2"]
                print(
                    f"  metafor vcalc + rma.mv(sparse=TRUE) + robust(clubSandwich=TRUE) "
                    f"median {cr2_ms:8.1f} ms"
                )
                print(
                    f"  ratio CHE + CR2:   {cr2_ms / tche_cr2:6.0f}x faster than metafor + "
                    "clubSandwich (target >= 50x)"
                )
            else:
                print("  CHE + CR2 in R: clubSandwich not installed; no ratio")

    print("scale: three-level REML, one moderator (time, peak traced memory)")
    sizes = (25_000, 50_000, 100_000) if not quick else (25_000, 100_000)
    for k_target in sizes:
        big = scale_data(k_target)
        ac.fit(big.iloc[:2000], moderators=["log_ptr"], cluster="study")
        start = time.perf_counter()
        fitted = ac.fit(big, moderators=["log_ptr"], cluster="study")
        elapsed = time.perf_counter() - start
        tracemalloc.start()  # a second fit for memory: tracing slows allocation down
        ac.fit(big, moderators=["log_ptr"], cluster="study")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(
            f"  k = {fitted.k:7d} in {fitted.n_studies:6d} studies: {elapsed:6.2f} s, "
            f"peak {peak / 2**20:7.1f} MiB ({peak / fitted.k:6.0f} bytes per effect size)"
        )
    print("(100,000 effect sizes target: <= 2 s; a k x k matrix would need 80 GB)")

    print(f"scale: CHE three-level REML (rho = {CHE_RHO}), one moderator")
    big = scale_data(100_000)
    ac.fit(big.iloc[:2000], moderators=["log_ptr"], cluster="study", rho=CHE_RHO)
    start = time.perf_counter()
    fitted = ac.fit(big, moderators=["log_ptr"], cluster="study", rho=CHE_RHO)
    elapsed = time.perf_counter() - start
    print(
        f"  k = {fitted.k:7d} in {fitted.n_studies:6d} studies: {elapsed:6.2f} s "
        f"({fitted.iterations} iterations; target <= 2 s)"
    )
    # Robust (CR2) inference timings belong here, after the CHE section, on the same data
    # (``data`` and ``che_fit`` above): the fit they start from is the CHE fit.


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--no-r", action="store_true", help="skip the metafor timing")
    args = parser.parse_args()
    run(quick=args.quick, with_r=not args.no_r)


if __name__ == "__main__":
    main()
