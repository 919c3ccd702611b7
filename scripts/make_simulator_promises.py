"""Write the Simulator presets' promise shares to alliance_core/teaching/promises.json.

For every preset, 200 literatures are simulated with the preset's settings at seeds 1–200 and
analysed like the Simulator's default (three-level model, REML, log PTR); for each the file
records whether the fitted PTR slope points the promised way, whether its 95 % interval
excludes zero on that side, and whether the whole promise is kept (``Preset.promise_kept``).
The page shows the shares; tests/unit/test_simulator_promises.py recomputes seeds of the file
and checks the shares against fresh literatures. Takes about four minutes on one core.

    PYTHONPATH=. python scripts/make_simulator_promises.py
"""

from __future__ import annotations

from pathlib import Path

from alliance_core.teaching.promises import PROMISE_FILE, promise_share, shares_to_json
from alliance_core.teaching.simulator import PRESETS

TARGET = Path(__file__).resolve().parents[1] / "alliance_core" / "teaching" / PROMISE_FILE


def main() -> None:
    shares = []
    for preset in PRESETS.values():
        share = promise_share(preset)
        print(f"{preset.name}: {share.sentence()}", flush=True)
        shares.append(share)
    TARGET.write_text(shares_to_json(shares), encoding="utf-8")
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
