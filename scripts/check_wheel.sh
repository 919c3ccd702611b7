#!/usr/bin/env bash
# The engine as a package a notebook can use: build the wheel of alliance_core, install it into
# a clean virtual environment with its runtime dependencies only (pinned by requirements.txt,
# used as constraints; no Streamlit), and run the engine guide's examples against it from a
# directory that is not the repository, so nothing can be imported from the source tree.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD_PYTHON="${BUILD_PYTHON:-.venv/bin/python}"  # has `build` (requirements-dev.txt)
BASE_PYTHON="${BASE_PYTHON:-python3}"             # the clean environment's interpreter
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$BUILD_PYTHON" -m build --wheel --outdir "$work/dist" . >"$work/build.log" 2>&1 || {
    cat "$work/build.log"
    exit 1
}
wheel=("$work"/dist/alliance_core-*.whl)
echo "wheel-check: built $(basename "${wheel[0]}")"

"$BASE_PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c requirements.txt "${wheel[0]}"

mkdir "$work/run"
cp docs/engine.md "$work/run/"
cd "$work/run"
"$work/venv/bin/python" - <<'PY'
import importlib.util

import alliance_core as ac

problems = []
if importlib.util.find_spec("streamlit") is not None:
    problems.append("the wheel's dependencies pulled in Streamlit")
if "site-packages" not in ac.__file__:
    problems.append(f"alliance_core was imported from {ac.__file__}, not the installed wheel")
data = ac.load_dataset(ac.DEFAULT_DATASET)  # the bundled data travel as package data
if len(data) == 0:
    problems.append("the default dataset is empty")
for info in ac.list_datasets():
    ac.load_dataset(info.name)
if problems:
    raise SystemExit("wheel-check: " + "; ".join(problems))
print(f"wheel-check: installed without Streamlit; {len(data)} rows in {ac.DEFAULT_DATASET}")
PY
"$work/venv/bin/python" -m doctest -o ELLIPSIS -o NORMALIZE_WHITESPACE engine.md
echo "wheel-check: docs/engine.md examples pass against the installed wheel"
