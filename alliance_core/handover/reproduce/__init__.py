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

With ``bias`` (``alliance_core.handover.bias_results.publication_bias`` of the model without
moderators) the selection model and the fail-safe Ns travel too: metafor's ``selmodel`` and
``fsn`` in R (metaselection's composite-likelihood model for a three-level model, skipped
with a message, and left out of the count, where metaselection is not installed), the same
engine calls in Python. metafor's selection-model SEs come from a numerical Hessian, so the R
script compares those rows to 1e-4 (its agreement line says so).

Every model with categorical moderators also hands over its marginal means (model-based, and
CR2 under cluster-robust inference). On request the sidebar model's comparison table
(``comparison``: ML refits of each neighbour, ``anova``/``fitstats`` in R) and its
location-scale refit (``heterogeneity``: ``rma(..., scale = ~ PTR)``) travel too.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence

import pandas as pd

from alliance_core.analyses.model_comparison import ModelComparison
from alliance_core.analyses.run import AnalysisRun
from alliance_core.data.mapping import ColumnMapping
from alliance_core.handover.bias_results import PublicationBias
from alliance_core.handover.provenance import Provenance
from alliance_core.handover.reproduce.common import (
    AGREEMENT_PREFIX,
    RELATIVE_TOLERANCE,
    ModelCode,
    model_rows,
    py_string,
    r_names,
    r_string,
)
from alliance_core.handover.reproduce.python_script import python_script
from alliance_core.handover.reproduce.r_script import r_script
from alliance_core.handover.results_table import results_csv, to_csv_text
from alliance_core.model.location_scale import LocationScaleResult
from alliance_core.model.robust import RobustResult
from alliance_core.model.wild_bootstrap import WildBootstrapResult


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
    bias: PublicationBias | None = None,
    comparison: ModelComparison | None = None,
    heterogeneity: LocationScaleResult | None = None,
    wild_bootstrap: Mapping[str, WildBootstrapResult] | None = None,
) -> dict[str, bytes | str]:
    """The files of a reproduction zip: data.csv, dashboard_results.csv, the script.

    ``table``: the effect-size table the run was made from (needed for the aggregated
    two-level model); ``robust``: the cluster-robust inference shown with the model, whose
    numbers the results file and the scripts then include; ``bias``: the selection model and
    fail-safe N of this model without moderators (``publication_bias``), which then travel
    too; ``comparison``: the model comparison table of this model (``model_comparison``);
    ``heterogeneity``: its location-scale refit (scale = ~ PTR), as the Moderators page fits it;
    ``wild_bootstrap``: the Moderators page's cluster wild bootstrap tests of this model
    (label -> result), rerun in Python; in R the observed F is checked with clubSandwich.
    """
    code = ModelCode.of(
        run,
        mapping,
        on_r_scale,
        table=table,
        robust=robust,
        bias=bias,
        comparison=comparison,
        heterogeneity=heterogeneity,
        wild_bootstrap=wild_bootstrap,
    )
    script = r_script(code, provenance) if language == "R" else python_script(code, provenance)
    return {
        # Neutralised for spreadsheets (a person may open them), reversibly: the scripts take
        # the added quote off again, so their values are exactly what the model saw.
        "data.csv": to_csv_text(model_rows(code), for_scripts=True),
        "dashboard_results.csv": results_csv(
            run.result,
            on_r_scale,
            provenance,
            robust,
            for_scripts=True,
            bias=bias,
            comparison=comparison,
            heterogeneity=heterogeneity,
            wild_bootstrap=wild_bootstrap,
        ),
        "analysis.R" if language == "R" else "analysis.py": script,
    }


# The R and the Python zip differ only in the script they hold (``bundle_files`` picks it by
# language), so one function makes both zip makers; ``r_bundle`` and ``python_bundle`` keep
# their names and keyword signatures for their callers.
def _bundle_maker(language: str, script: str) -> Callable[..., bytes]:
    """The zip maker of one script language: the zip of :func:`bundle_files` in ``language``."""

    def bundle(
        run,
        mapping,
        provenance,
        *,
        on_r_scale: bool,
        table=None,
        robust=None,
        bias=None,
        comparison=None,
        heterogeneity=None,
        wild_bootstrap=None,
    ) -> bytes:
        return _zip(
            bundle_files(
                run,
                mapping,
                provenance,
                on_r_scale=on_r_scale,
                language=language,
                table=table,
                robust=robust,
                bias=bias,
                comparison=comparison,
                heterogeneity=heterogeneity,
                wild_bootstrap=wild_bootstrap,
            )
        )

    bundle.__name__ = bundle.__qualname__ = f"{language.lower()}_bundle"
    bundle.__doc__ = f"Zip: data.csv, {script}, dashboard_results.csv (see ``bundle_files``)."
    return bundle


r_bundle = _bundle_maker("R", "analysis.R (metafor)")
python_bundle = _bundle_maker("Python", "analysis.py (alliance_core)")


# -- several models in one zip -----------------------------------------------------------------
# A page that shows two models (the Overview: the pooled model and the model with moderators)
# hands over both: one folder per model with its own data, results and script, and a runner at
# the top that runs each and prints one agreement line counting the numbers of both.
R_RUNNER = """# Runs the script of each model in its folder and counts their agreement with the dashboard
# together (each folder's analysis.R can also be run on its own, from inside its folder).
parts <- c({parts})
here <- getwd()
agree <- 0
given <- 0
for (part in parts) {{
  setwd(file.path(here, part))
  out <- suppressWarnings(system2("Rscript", "analysis.R", stdout = TRUE, stderr = TRUE))
  setwd(here)
  cat(sprintf("== %s ==\\n", part))
  cat(out, sep = "\\n")
  found <- regmatches(out, regexec("{prefix} ([0-9]+) of ([0-9]+) numbers", out))
  found <- Filter(length, found)
  if (length(found) == 1) {{
    agree <- agree + as.integer(found[[1]][2])
    given <- given + as.integer(found[[1]][3])
  }} else {{
    given <- given + 1  # a script that printed no agreement line counts as a disagreement
  }}
}}
cat(sprintf("{prefix} %d of %d numbers within {tolerance} (%s)\\n", agree, given,
            paste(parts, collapse = " and ")))
quit(status = if (agree == given && given > 0) 0 else 1)
"""

PY_RUNNER = """# Runs the script of each model in its folder and counts their agreement with the dashboard
# together (each folder's analysis.py can also be run on its own).
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = [{parts}]
agree = given = 0
for part in PARTS:
    out = subprocess.run(
        [sys.executable, "analysis.py"], cwd=HERE / part, capture_output=True, text=True
    )
    print(f"== {{part}} ==")
    print(out.stdout + out.stderr)
    found = re.search(r"{prefix} (\\d+) of (\\d+) numbers", out.stdout)
    if found:
        agree += int(found.group(1))
        given += int(found.group(2))
    else:
        given += 1  # a script that printed no agreement line counts as a disagreement
print(f"{prefix} {{agree}} of {{given}} numbers within {tolerance} ({{' and '.join(PARTS)}})")
sys.exit(0 if agree == given and given > 0 else 1)
"""


def models_files(
    models: Sequence[tuple[str, AnalysisRun, Provenance]],
    mapping: ColumnMapping,
    *,
    on_r_scale: bool,
    language: str,
    table: pd.DataFrame | None = None,
    bias: PublicationBias | None = None,
    comparison: ModelComparison | None = None,
    heterogeneity: LocationScaleResult | None = None,
    wild_bootstrap: Mapping[str, WildBootstrapResult] | None = None,
) -> dict[str, bytes | str]:
    """The files of a zip covering every model a page shows, each model under its label
    ("pooled", "moderators") with its own data.csv, dashboard_results.csv and script (under its
    chosen inference), and a runner script whose agreement line counts the numbers of all of
    them. One model gives the flat files of :func:`bundle_files`. ``bias``: the selection
    model and fail-safe N of the model without moderators, reproduced with that model;
    ``comparison``, ``heterogeneity`` and ``wild_bootstrap``: the model comparison table, the
    location-scale refit and the cluster wild bootstrap tests of the last (the sidebar's)
    model."""

    def files_of(run: AnalysisRun, provenance: Provenance) -> dict[str, bytes | str]:
        """One model's files (the same call for a flat zip and for each folder): the bias
        results go with the model without moderators, the comparison, location-scale refit
        and wild bootstrap tests with the last model."""
        last = run is models[-1][1]
        return bundle_files(
            run,
            mapping,
            provenance,
            on_r_scale=on_r_scale,
            language=language,
            table=table,
            robust=run.robust,
            bias=bias if bias is not None and run.result.p == 1 else None,
            comparison=comparison if last else None,
            heterogeneity=heterogeneity if last else None,
            wild_bootstrap=wild_bootstrap if last else None,
        )

    if len(models) == 1:
        _, run, provenance = models[0]
        return files_of(run, provenance)
    files: dict[str, bytes | str] = {}
    for label, run, provenance in models:
        part = files_of(run, provenance)
        files.update({f"{label}/{name}": content for name, content in part.items()})
    labels = ", ".join(
        (r_string if language == "R" else py_string)(label) for label, _, _ in models
    )
    runner = R_RUNNER if language == "R" else PY_RUNNER
    files["analysis.R" if language == "R" else "analysis.py"] = runner.format(
        parts=labels, prefix=AGREEMENT_PREFIX, tolerance=f"{RELATIVE_TOLERANCE:g}"
    )
    return files


def models_bundle(
    models,
    mapping,
    *,
    on_r_scale: bool,
    language: str,
    table=None,
    bias=None,
    comparison=None,
    heterogeneity=None,
    wild_bootstrap=None,
) -> bytes:
    """Zip of :func:`models_files`."""
    return _zip(
        models_files(
            models,
            mapping,
            on_r_scale=on_r_scale,
            language=language,
            table=table,
            bias=bias,
            comparison=comparison,
            heterogeneity=heterogeneity,
            wild_bootstrap=wild_bootstrap,
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
    "models_bundle",
    "models_files",
    "parse_agreement",
    "py_string",
    "python_bundle",
    "python_script",
    "r_bundle",
    "r_names",
    "r_script",
    "r_string",
]
