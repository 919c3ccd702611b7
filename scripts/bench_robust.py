"""Benchmark of cluster-robust inference: ``python scripts/bench_robust.py [--quick] [--no-r]``.

Times ``MetaResult.robust(method="CR2")`` (CR2 variance, Satterthwaite df of every
coefficient and the HTZ test of all moderators) on a fitted model, not the fit itself:

* the default dataset (about 150 studies, 810 effect sizes), three-level REML with the 8
  moderator columns of ``alliance_core.bench`` (15 coefficients), and CR1 for comparison;
* metafor's ``robust(fit, cluster = study, clubSandwich = TRUE)`` on the same fitted model in
  R (which computes the same three results through clubSandwich), and the ratio;
* scale: k = 25,000 to 100,000 effect sizes in 5,000 to 20,000 studies, with one and with
  four coefficients.

Target: the default data well under 100 ms, k = 100,000 in about 1-2 s. Prints figures;
asserts nothing.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import alliance_core as ac  # noqa: E402
from alliance_core.bench import (  # noqa: E402
    MODERATORS,
    R_FORMULA,
    benchmark_data,
    median_ms,
    scale_data,
)


def time_clubsandwich(data, repeats: int) -> dict | None:
    """Median seconds of metafor robust(clubSandwich = TRUE) on a fitted rma.mv, via Rscript."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "data.csv"
        data.to_csv(csv, index=False)
        script = f"""
suppressMessages({{library(metafor); library(clubSandwich)}})
d <- read.csv("{csv}", stringsAsFactors = FALSE)
d$es_row <- seq_len(nrow(d))
fit <- rma.mv(yi, vi, mods = {R_FORMULA}, random = ~ 1 | study/es_row, data = d,
              method = "REML")
run <- function() robust(fit, cluster = d$study, clubSandwich = TRUE)
invisible(run())
t <- sapply(seq_len({repeats}), function(i) system.time(run())[["elapsed"]])
cat(jsonlite::toJSON(list(seconds = median(t),
                          metafor = as.character(packageVersion("metafor")),
                          clubSandwich = as.character(packageVersion("clubSandwich"))),
                     auto_unbox = TRUE))
"""
        proc = subprocess.run(
            ["Rscript", "-e", script], capture_output=True, text=True, timeout=1800
        )
        if proc.returncode != 0:
            print("clubSandwich timing failed:", proc.stderr.strip().splitlines()[-1:])
            return None
        return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool, with_r: bool) -> None:
    repeats = 15 if quick else 50
    data = benchmark_data()
    res = ac.fit(data, moderators=MODERATORS, cluster="study", method="REML")
    print(
        f"robust() on the default dataset: k = {res.k} in {res.n_studies} studies, "
        f"p = {res.p} coefficients (three-level REML)"
    )
    cr2 = median_ms(lambda: res.robust(method="CR2"), repeats)
    cr1 = median_ms(lambda: res.robust(method="CR1"), repeats)
    print(f"  CR2 + Satterthwaite df + HTZ    median {cr2:8.2f} ms   (target well under 100 ms)")
    print(f"  CR1 (metafor's df = J - p)      median {cr1:8.2f} ms")
    if with_r:
        timing = time_clubsandwich(data, repeats=3 if quick else 5)
        if timing is None:
            print("  clubSandwich: Rscript with metafor and clubSandwich not available; no ratio")
        else:
            r_ms = 1000.0 * timing["seconds"]
            print(
                f"  metafor {timing['metafor']} robust(clubSandwich = TRUE, "
                f"clubSandwich {timing['clubSandwich']})  median {r_ms:8.1f} ms"
            )
            print(f"  ratio: {r_ms / cr2:6.0f}x faster than R")

    print("scale: CR2 + Satterthwaite df + HTZ on three-level REML fits")
    sizes = (25_000, 100_000) if quick else (25_000, 50_000, 100_000)
    rng = np.random.default_rng(3)
    for k_target in sizes:
        big = scale_data(k_target)
        big["rater"] = rng.choice(["observer", "patient", "therapist"], len(big))
        big["year"] = rng.normal(2000, 8, big["study"].max() + 1)[big["study"]]
        for moderators in (["log_ptr"], ["log_ptr", "rater", "year"]):
            fitted = ac.fit(big, moderators=moderators, cluster="study")
            fitted.robust()  # warm-up
            times = []
            for _ in range(3):
                start = time.perf_counter()
                fitted.robust()
                times.append(time.perf_counter() - start)
            print(
                f"  k = {fitted.k:7d} in {fitted.n_studies:6d} studies, p = {fitted.p}: "
                f"median {np.median(times):6.2f} s"
            )
    print("(target: k = 100,000 in about 1-2 s; a dense k x k working matrix would need 80 GB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--no-r", action="store_true", help="skip the clubSandwich timing")
    args = parser.parse_args()
    run(quick=args.quick, with_r=not args.no_r)


if __name__ == "__main__":
    main()
