"""Write the bundled default dataset, data/alliance_simulated.csv (SIMULATED, not real studies).

Usage:  .venv/bin/python scripts/make_default_dataset.py [--output PATH]

The generating parameters are the documented defaults of
``alliance_core.teaching.simulate.SimulationParameters`` (seed 2021); data/README.md lists them.
Running the script reproduces the committed file byte for byte, which a unit test checks.
Values are rounded like a published coding sheet: r to 3 decimals, PTR and PD share to 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from alliance_core.teaching.simulate import SimulationParameters, simulate_meta_analysis

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPOSITORY / "data" / "alliance_simulated.csv"
PARAMETERS = SimulationParameters()
DECIMALS = {"r": 3, "ptr": 2, "pd_share": 2}


def build_default_dataset(params: SimulationParameters = PARAMETERS) -> pd.DataFrame:
    """The simulated coding sheet, rounded for publication."""
    table = simulate_meta_analysis(params).round(DECIMALS)
    # Rounding must not turn a sample with PD patients into one without.
    if ((table["pd"] == "yes") != (table["pd_share"] > 0)).any():
        raise ValueError("pd_share rounded to 0 for a study coded pd = yes; change decimals.")
    return table


def write_default_dataset(path: Path = DEFAULT_OUTPUT) -> pd.DataFrame:
    """Write the CSV with fixed line endings so every platform produces the same bytes."""
    table = build_default_dataset()
    table.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    table = write_default_dataset(parser.parse_args().output)
    studies = table.drop_duplicates("study")
    print(
        f"{len(table)} effect sizes from {len(studies)} studies "
        f"({studies['n'].sum()} patients); {(table['r'] < 0).mean():.1%} of r negative; "
        f"PTR {studies['ptr'].min():g} to {studies['ptr'].max():g}"
    )


if __name__ == "__main__":
    main()
