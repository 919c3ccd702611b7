"""Running the reproduction scripts as the tests do (shared by the unit tests).

A state's "Reproduce in R / Python" zip is unpacked into a folder of its own; one Rscript call
runs every R script (metafor loads once) and one Python process every Python script, and each
prints one ``STATE <folder> status=<exit status> | <agreement line>`` line, which
``assert_all_agree`` reads: every script must report every number agreeing.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from alliance_core.handover import reproduce
from alliance_core.handover.reproduce import parse_agreement
from tests.unit.reproduce_states import Prepared

R_BATCH = r"""
suppressPackageStartupMessages(library(metafor))
top <- getwd()
for (d in commandArgs(trailingOnly = TRUE)) {
  setwd(file.path(top, d))
  env <- new.env()
  status <- NA
  # analysis.R ends with quit(status = ...); here it only records the status.
  env$quit <- function(status = 0, ...) status <<- status
  out <- tryCatch(capture.output(sys.source("analysis.R", envir = env)),
                  error = function(e) paste("error:", conditionMessage(e)))
  line <- grep("^(agreement with the dashboard|differs|error)", out, value = TRUE)
  cat(sprintf("STATE %s status=%s | %s\n", d, status, paste(line, collapse = " | ")))
  setwd(top)
}
"""

PY_BATCH = r"""
import contextlib, io, os, runpy, sys
top = os.getcwd()
for d in sys.argv[1:]:
    os.chdir(os.path.join(top, d))
    out, status = io.StringIO(), None
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path("analysis.py", run_name="__main__")
    except SystemExit as stop:
        status = stop.code
    except Exception as error:
        out.write(f"error: {error!r}\n")
    lines = [l for l in out.getvalue().splitlines()
             if l.startswith(("agreement with the dashboard", "differs", "error"))]
    print(f"STATE {d} status={status} | " + " | ".join(lines), flush=True)
    os.chdir(top)
"""


def write_bundle(folder: Path, prepared: Prepared, language: str, **extras) -> None:
    """The state's zip (``r_bundle`` or ``python_bundle``) unpacked into ``folder``;
    ``extras`` are further bundle arguments (``bias=``, ``comparison=``, ...)."""
    make = reproduce.r_bundle if language == "R" else reproduce.python_bundle
    content = make(
        prepared.run, prepared.mapping, prepared.provenance, **extras, **prepared.bundle_options()
    )
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        archive.extractall(folder)


def write_bundles(
    root: Path, language: str, bundles: Iterable[tuple[str, Prepared, Mapping]]
) -> list[str]:
    """Each (name, prepared state, further bundle arguments) unpacked into ``root / name``;
    the names, in order."""
    names = []
    for name, prepared, extras in bundles:
        write_bundle(root / name, prepared, language, **extras)
        names.append(name)
    return names


def run_batch(
    root: Path, language: str, names: list[str], *, timeout: float, r_batch: str = R_BATCH
) -> str:
    """The scripts of the folders ``names`` under ``root`` run in one Rscript call
    (``r_batch``) or one Python process; its output, one ``STATE`` line a folder."""
    if language == "R":
        (root / "batch.R").write_text(r_batch)
        command = ["Rscript", "batch.R", *names]
    else:
        (root / "batch.py").write_text(PY_BATCH)
        command = [sys.executable, "batch.py", *names]
    proc = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(proc.stdout)
    return proc.stdout


def state_lines(stdout: str) -> dict[str, str]:
    """Folder name -> its ``STATE`` line."""
    return {line.split()[1]: line for line in stdout.splitlines() if line.startswith("STATE ")}


def assert_all_agree(stdout: str, names: Iterable[str]) -> None:
    """Every named script exited 0 and reported all of its (at least one) numbers agreeing."""
    results = state_lines(stdout)
    failures = []
    for name in names:
        line = results.get(name, f"STATE {name}: no output")
        counts = parse_agreement(line)
        if counts is None or counts[0] != counts[1] or counts[1] == 0 or "status=0" not in line:
            failures.append(line)
    assert not failures, "\n".join(failures)
