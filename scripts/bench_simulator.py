"""Benchmark of the Simulator page's engine: ``python scripts/bench_simulator.py [--png DIR]``.

Times ``alliance_core.teaching.simulator.run_simulation`` (simulate, effect sizes, three-level REML fit,
theory curve and theory slope) and the figure, for the page's largest setting (500 studies,
about 10 effect sizes each, 200 patients per study) and for the default literature (152
studies). The target is ≤ 2 s per run including the fit. Each step is timed through the run's
``progress`` callback. Prints figures; asserts nothing.

``--png DIR`` also writes the run's figure (and a patient-level figure) as PNG for a visual
check; that needs a Chromium-family browser (see ``alliance_core.figures.export_figure``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alliance_core.teaching.simulate import SimulationParameters, simulate_patients  # noqa: E402
from alliance_core.teaching.simulator import PROGRESS_STEPS, run_simulation  # noqa: E402

LARGEST = replace(
    SimulationParameters(),
    n_studies=500,
    effect_sizes_mean=10.0,  # geometric, truncated at 30: about 10 effect sizes per study
    effect_sizes_max=30,
    patients_median=200.0,
    patients_log_sd=0.0,  # every study has 200 patients
    patients_max=200,
)
SETTINGS = {"largest (500 studies x ~10 ES x 200 patients)": LARGEST, "default": None}


class StepTimer:
    """A progress callback that records the time of each step."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.seconds: list[float] = []

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        self.seconds.append(now - self.last)
        self.last = now


def time_runs(params, repeats: int) -> tuple[list[float], list[list[float]], list[float], object]:
    totals, steps, figures, run = [], [], [], None
    for _ in range(repeats):
        timer = StepTimer()
        started = time.perf_counter()
        run = run_simulation(params, progress=timer)
        totals.append(time.perf_counter() - started)
        steps.append(timer.seconds)
        started = time.perf_counter()
        run.figure()
        figures.append(time.perf_counter() - started)
    return totals, steps, figures, run


def report(name: str, params, repeats: int) -> object:
    run_simulation(params)  # warm-up: imports and first-call caches
    totals, steps, figures, run = time_runs(params, repeats)
    k, studies = run.result.k, run.result.n_studies
    print(f"\n{name}: {studies} studies, {k} effect sizes, median N = {run.typical_n}")
    print(
        f"  run_simulation: median {statistics.median(totals):.3f} s, "
        f"max {max(totals):.3f} s over {repeats} runs (target <= 2 s)"
    )
    for i, step in enumerate(PROGRESS_STEPS):
        print(f"    {step:<13} median {statistics.median(s[i] for s in steps):.3f} s")
    print(f"  figure(): median {statistics.median(figures):.3f} s")
    print(f"  {run.describe()}")
    return run


def write_pngs(run, directory: Path) -> None:
    from alliance_core.figures import export_figure
    from alliance_core.teaching.patient_level import fit_patient_level
    from alliance_core.teaching.patient_level_figure import therapist_means_figure

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "simulator_run.png").write_bytes(export_figure(run.figure(), "png"))
    patients = simulate_patients(SimulationParameters(seed=7), 240, 30)
    figure = therapist_means_figure(fit_patient_level(patients))
    (directory / "patient_level.png").write_bytes(export_figure(figure, "png"))
    print(f"\nFigures written to {directory}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--png", type=Path, default=None, help="directory for PNG figures")
    args = parser.parse_args()
    runs = [report(name, params, args.repeats) for name, params in SETTINGS.items()]
    if args.png is not None:
        write_pngs(runs[0], args.png)


if __name__ == "__main__":
    main()
