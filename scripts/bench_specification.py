"""Time the specification curve and leave-one-out on the default dataset (a benchmark, not a test).

Usage: .venv/bin/python scripts/bench_specification.py [--repeat N]

The targets for the dashboard: at most 3 s for 256 specifications (2^7 control subsets x two
models), and well under a second for leave-one-out over about 150 studies. Each line prints the
best of N runs (default 3), since a shared machine adds noise in one direction only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import alliance_core as ac  # noqa: E402
from alliance_core.analyses.bias import aggregate_by_study  # noqa: E402
from alliance_core.analyses.influence import influence_diagnostics  # noqa: E402
from alliance_core.analyses.run import effect_size_table  # noqa: E402
from alliance_core.analyses.sensitivity import leave_one_out  # noqa: E402
from alliance_core.analyses.specification import specification_curve  # noqa: E402
from alliance_core.data.datasets import dataset_info, load_dataset  # noqa: E402

CONTROLS = (
    "alliance_rater",
    "outcome_rater",
    "alliance_measure",
    "design",
    "pd_share",
    "pd",
    "year",
)


def best_of(repeat: int, work) -> tuple[float, float, object]:
    """Best wall-clock and CPU seconds of ``repeat`` runs, and the last result.

    CPU time is the process's own; on a busy machine it is the steadier of the two.
    """
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat

    info = dataset_info("alliance_simulated")
    data = load_dataset("alliance_simulated")
    mapping = info.mapping

    for controls, models, methods in (
        (CONTROLS, ("two-level", "three-level"), ("REML",)),
        ((*CONTROLS, "n"), ("two-level", "three-level"), ("REML",)),
        (CONTROLS[:6], ("two-level", "three-level"), ("REML", "ML")),
    ):
        wall, cpu, curve = best_of(
            repeat,
            lambda c=controls, m=models, e=methods: specification_curve(
                data, mapping, "log_PTR", c, models=m, methods=e
            ),
        )
        print(
            f"specification curve: {len(curve.table):4d} specifications "
            f"({len(controls)} controls x {len(models)} models x {len(methods)} estimators): "
            f"{wall:.2f} s wall, {cpu:.2f} s CPU ({1000 * wall / len(curve.table):.1f} ms each); "
            f"PTR significant in {curve.share_significant:.0%}"
        )

    table = effect_size_table(data, mapping)
    three_level = ac.fit(table, moderators=["log_PTR"], cluster="study")
    per_study = ac.fit(aggregate_by_study(three_level), moderators=["log_PTR"])
    for res, what in (
        (per_study, "studies (one aggregated effect each)"),
        (ac.fit(table, moderators=["log_PTR"]), "effect sizes"),
        (three_level, "studies"),
    ):
        wall, cpu, loo = best_of(repeat, lambda r=res: leave_one_out(r))
        print(
            f"leave-one-out, {res.model}: {len(loo.table)} {what}: "
            f"{wall:.2f} s wall, {cpu:.2f} s CPU"
        )
        wall, cpu, _ = best_of(repeat, lambda r=res: influence_diagnostics(r))
        print(f"influence diagnostics, {res.model}: {wall:.2f} s wall, {cpu:.2f} s CPU")


if __name__ == "__main__":
    main()
