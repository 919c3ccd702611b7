"""Scripts that rerun an analysis outside the dashboard: metafor (R) and alliance_core (Python).

``r_bundle`` and ``python_bundle`` return zip files holding ``data.csv`` (exactly the rows the
model used, with the columns it used), the script, and ``dashboard_results.csv`` (the results
download of the same analysis). Each script ends by comparing its numbers with
``dashboard_results.csv`` and prints one line, ``agreement with the dashboard: N of N numbers
within 1e-6``, exiting non-zero when any number differs.

Agreement: a number agrees when |ours - dashboard| <= 1e-6 * max(|dashboard|, s) + 1e-8: to
1e-6 relative, with an absolute floor of 1e-8 for numbers at zero (variance components at
the boundary), as the parity tests compare. s is 100 for pseudo-R² and I² (percent): they are
built from variance estimates and accurate relative to their 0-100 scale (an I² whose variance
component sits at zero is 0 in one fit and a hair above it in another); s is 0 otherwise.

User text (column names, levels, file names) reaches the scripts only as escaped string
literals: R code refers to columns through syntactic names assigned by position, Python code
through ASCII ``ascii()`` literals, and comments carry the same escaped literals, never raw text.

Models covered: two-level (``rma``), three-level (``rma.mv`` with ``~ 1 | study/es``), the CHE
working model (``V <- vcalc(vi, cluster, obs = es, rho)``, ``rma.mv(yi, V, ...)``; ``res.rho``),
the aggregated two-level model on nested data (``aggregate(dat, cluster, rho)`` then ``rma``;
data.csv holds the effect-size rows the aggregation combined, so ``bundle_files`` needs the
effect-size table), the two-level model on nested rows treated as independent, and CR2
cluster-robust inference passed in as a ``RobustResult`` (``robust(res, cluster,
clubSandwich = TRUE)``; its rows are added to the results file and compared too).
"""

from __future__ import annotations

import io
import re
import zipfile

import pandas as pd

from alliance_core.analyses.run import AnalysisRun
from alliance_core.data.mapping import ColumnMapping
from alliance_core.handover.provenance import Provenance
from alliance_core.handover.reproduce.common import (
    AGREEMENT_PREFIX,
    ModelCode,
    model_rows,
    py_string,
    r_names,
    r_string,
)
from alliance_core.handover.reproduce.python_script import python_script
from alliance_core.handover.reproduce.r_script import r_script
from alliance_core.handover.results_table import results_csv, to_csv_text
from alliance_core.model.robust import RobustResult


# -- bundles -----------------------------------------------------------------------------------
def _zip(files: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content.encode("utf-8") if isinstance(content, str) else content)
    return buffer.getvalue()


def bundle_files(
    run: AnalysisRun,
    mapping: ColumnMapping,
    provenance: Provenance,
    *,
    on_r_scale: bool,
    language: str,
    table: pd.DataFrame | None = None,
    robust: RobustResult | None = None,
) -> dict[str, bytes | str]:
    """The files of a reproduction zip: data.csv, dashboard_results.csv, the script.

    ``table``: the effect-size table the run was made from (needed for the aggregated
    two-level model); ``robust``: the cluster-robust inference shown with the model, whose
    numbers the results file and the scripts then include.
    """
    code = ModelCode.of(run, mapping, on_r_scale, table=table, robust=robust)
    script = r_script(code, provenance) if language == "R" else python_script(code, provenance)
    return {
        # Neutralised for spreadsheets (a person may open them), reversibly: the scripts take
        # the added quote off again, so their values are exactly what the model saw.
        "data.csv": to_csv_text(model_rows(code), for_scripts=True),
        "dashboard_results.csv": results_csv(
            run.result, on_r_scale, provenance, robust, for_scripts=True
        ),
        "analysis.R" if language == "R" else "analysis.py": script,
    }


def r_bundle(run, mapping, provenance, *, on_r_scale: bool, table=None, robust=None) -> bytes:
    """Zip: data.csv, analysis.R (metafor), dashboard_results.csv (see ``bundle_files``)."""
    return _zip(
        bundle_files(
            run,
            mapping,
            provenance,
            on_r_scale=on_r_scale,
            language="R",
            table=table,
            robust=robust,
        )
    )


def python_bundle(run, mapping, provenance, *, on_r_scale: bool, table=None, robust=None) -> bytes:
    """Zip: data.csv, analysis.py (alliance_core), dashboard_results.csv (see ``bundle_files``)."""
    return _zip(
        bundle_files(
            run,
            mapping,
            provenance,
            on_r_scale=on_r_scale,
            language="Python",
            table=table,
            robust=robust,
        )
    )


def parse_agreement(output: str) -> tuple[int, int] | None:
    """(agreeing, compared) from a script's agreement line, or None when it printed none."""
    match = re.search(rf"{re.escape(AGREEMENT_PREFIX)} (\d+) of (\d+) numbers", output)
    return (int(match.group(1)), int(match.group(2))) if match else None


__all__ = [
    "ModelCode",
    "bundle_files",
    "model_rows",
    "parse_agreement",
    "py_string",
    "python_bundle",
    "python_script",
    "r_bundle",
    "r_names",
    "r_script",
    "r_string",
]
