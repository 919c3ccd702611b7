"""The "Reproduce in Python" script: the alliance_core pipeline of the analysis on screen."""

from __future__ import annotations

from alliance_core.analyses.run import LOG_PTR_COLUMN
from alliance_core.handover.csv_export import neutralise_formula
from alliance_core.handover.provenance import Provenance
from alliance_core.handover.reproduce.common import (
    ABSOLUTE_TOLERANCE,
    COMPARED_COLUMNS,
    CURVE_POINTS,
    RELATIVE_TOLERANCE,
    ModelCode,
    comment_items,
    left_out_moderators,
    number_literal,
    py_string,
)
from alliance_core.model.nesting import INDEPENDENT

# -- Python ------------------------------------------------------------------------------------
# Undoes csv_export.neutralise_formula(reversible=True) on every text cell and column name.
UNQUOTE_PYTHON = [
    "# The CSV files are safe to open in a spreadsheet: a text cell or column name that starts",
    "# with a formula character (= + - @, also after spaces or quotes) or with ' got one leading",
    "# ' (OWASP). Taking exactly one leading ' off every text value gives the values back.",
    "",
    "",
    "def unquoted(frame):",
    "    def one(value):",
    '        return value[1:] if isinstance(value, str) and value.startswith("\'") else value',
    "",
    "    out = frame.rename(columns=one)",
    "    for column in out.columns:",
    "        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):",
    "            out[column] = out[column].map(one)",
    "    return out",
    "",
    "",
]


def python_script(code: ModelCode, provenance: Provenance) -> str:
    res, settings, mapping = code.res, code.run.settings, code.mapping
    transform = '"r"' if code.on_r_scale else "None"
    header = [
        '"""Reproduces with alliance_core the analysis shown on the alliance meta-analysis dashboard.',
        "",
        "Run it in the unzipped folder with the project's Python environment:",
        "    python analysis.py",
        '"""',
        "",
        "# The analysis (user text appears as escaped Python strings):",
        *comment_items(provenance, "#", py_string),
    ]
    if provenance.simulated:
        header[0] = '"""NOTE: the data are SIMULATED, not real studies.'
        header.insert(1, "")
        header.insert(
            2, "Reproduces with alliance_core the analysis shown on the alliance dashboard."
        )
    # data.csv names its columns as neutralised for spreadsheets (see the script's step 1).
    text_types = ", ".join(
        f"{py_string(neutralise_formula(c, reversible=True))}: str"
        for c in code.columns
        if c in code.text_columns
    )
    body = [
        "import sys",
        "from pathlib import Path",
        "",
        "import numpy as np",
        "import pandas as pd",
        "",
        "import alliance_core as ac",
        "from alliance_core.data.effect_forms import effect_sizes_by_row",
        "from alliance_core.data.effect_sizes import from_fisher_z, from_standard_errors",
        "from alliance_core.data.mapping import ColumnMapping",
        "from alliance_core.analyses.model_comparison import model_comparison, refit_with",
        "from alliance_core.handover.bias_results import publication_bias",
        "from alliance_core.handover.results_table import results_frame",
        "",
        "HERE = Path(__file__).resolve().parent",
        "",
        "# 1. Data: exactly the rows the dashboard's model used, with the columns it used.",
        f'rows = pd.read_csv(HERE / "data.csv", dtype={{{text_types}}},',
        '                   keep_default_na=False, na_values=[""])  # a level "NA" stays text',
        *UNQUOTE_PYTHON,
        "rows = unquoted(rows)",
        "",
        "# 2. Effect sizes.",
    ]
    form = mapping.effect_form
    if mapping.mixed_forms:
        roles = ("r", "n", "z", "yi", "vi", "sei", "measure")
        given = ", ".join(
            f"{role}={py_string(getattr(mapping, role))}"
            for role in roles
            if getattr(mapping, role) is not None
        )
        body += [
            "# Effect sizes come in several forms; each row takes the first complete one.",
            "dat = rows.copy()",
            f'dat["yi"], dat["vi"], _ = effect_sizes_by_row(rows, ColumnMapping({given}))',
        ]
    elif form == "r":
        body.append(
            f"dat = ac.escalc(rows, r={py_string(mapping.r)}, n={py_string(mapping.n)}, "
            'measure="ZCOR")  # Fisher z'
        )
    elif form == "z":
        body.append(
            f"dat = from_fisher_z(rows, z={py_string(mapping.z)}, n={py_string(mapping.n)})"
            "  # vi = 1/(n - 3)"
        )
    elif form == "sei":
        body.append(
            f"dat = from_standard_errors(rows, yi={py_string(mapping.yi)}, "
            f"sei={py_string(mapping.sei)})  # vi = sei^2"
        )
    else:
        body.append(
            f'dat = ac.escalc(rows, measure="precomputed", yi={py_string(mapping.yi)}, '
            f"vi={py_string(mapping.vi)})"
        )
    if code.ptr_column is not None and mapping.ptr is not None:
        body += [
            "# Patient-Therapist Ratio as given in the data.",
            f'dat["PTR"] = dat[{py_string(mapping.ptr)}].where(dat[{py_string(mapping.ptr)}] > 0)',
        ]
    elif code.ptr_column is not None:
        body += [
            "# Patient-Therapist Ratio: patients per therapist.",
            f'dat["PTR"] = ac.ptr(dat[{py_string(mapping.ptr_patients)}], '
            f"dat[{py_string(mapping.n_therapists)}])",
        ]
        if code.ptr_column == LOG_PTR_COLUMN:
            body.append('dat["log_PTR"] = np.log(dat["PTR"])')
    if settings.filters:
        body.append("")
        body.append("# 3. Filter (data.csv holds only the kept rows already; shown for your data).")
        for column, levels in settings.filters.items():
            kept = "[" + ", ".join(py_string(v) for v in levels) + "]"
            body.append(f'dat = dat[dat[{py_string(column)}].astype("string").isin({kept})]')
    reference = {t.column: t.reference for t in res.design.terms if t.kind == "categorical"}
    moderators = "[" + ", ".join(py_string(m) for m in code.model_moderators) + "]"
    ref_text = (
        "{" + ", ".join(f"{py_string(c)}: {py_string(v)}" for c, v in reference.items()) + "}"
        if reference
        else "None"
    )
    cluster = py_string(res.cluster) if res.is_three_level else "None"
    if code.aggregated:
        left_out = left_out_moderators(code)
        body += [
            "",
            "# 3b. One aggregated effect per study: sampling errors within a study correlate",
            f"# with rho = {number_literal(code.rho)} (compound symmetry), as metafor's aggregate.escalc.",
            "# Moderators whose value differs within a study are left out of this model"
            + (": " + ", ".join(py_string(m) for m in left_out) + "." if left_out else "."),
            f"dat = ac.aggregate(dat, cluster={py_string(code.study)}, rho={number_literal(code.rho)})",
        ]
    if res.is_three_level:
        model_words = "three-level (effect sizes nested in studies)"
        if code.che:
            model_words += f", sampling errors within a study correlated with rho = {number_literal(code.rho)} (CHE)"
    elif code.aggregated:
        model_words = "two-level on one aggregated effect per study"
    elif code.structure == INDEPENDENT:
        model_words = (
            "two-level on every effect size, treating effect sizes of one study as\n"
            "# independent (this overstates precision; not recommended)"
        )
    else:
        model_words = "two-level"
    rho_argument = [f"    rho={number_literal(code.rho)},"] if code.che else []
    body += [
        "",
        f"# 4. The model: {model_words}.",
        "res = ac.fit(",
        "    dat,",
        '    yi="yi",',
        '    vi="vi",',
        f"    moderators={moderators},",
        f"    reference={ref_text},",
        f"    method={py_string(settings.method)},",
        f"    cluster={cluster},",
        f"    test={py_string(res.test)},",
        *rho_argument,
        ")",
        "print(res.summary())",
        "",
        "# 5. Predictions: the average effect at typical moderator values.",
        f"print(res.predict(transform={transform}))",
    ]
    if code.ptr_column is not None:
        spacing = "np.geomspace" if settings.ptr_scale == "log" else "np.linspace"
        value = "np.log(ptr_points)" if code.ptr_column == LOG_PTR_COLUMN else "ptr_points"
        body += [
            f'ptr_points = {spacing}(dat["PTR"].min(), dat["PTR"].max(), {CURVE_POINTS})',
            f"curve = res.predict({{{py_string(code.ptr_column)}: {value}}}, "
            f"transform={transform})",
            "print(curve.head())",
        ]
    robust_argument = ""
    if code.robust is not None:
        body += [
            "",
            "# 5b. Cluster-robust inference: CR2 with Satterthwaite df, HTZ tests (clubSandwich).",
            f'rob = res.robust(cluster={py_string(code.robust.cluster)}, method="CR2")',
            "print(rob.summary())",
        ]
        robust_argument = ", robust=rob"
    bias_argument = ""
    if code.bias is not None:
        steps = ", ".join(number_literal(s) for s in code.bias.steps)
        body += [
            "",
            "# 5c. Publication bias: the step-function selection model (cuts on the one-sided",
            "# p-value; cluster-robust by study for a three-level model) and the fail-safe Ns.",
            f"bias = publication_bias(res, steps=({steps},))",
            "if bias.selection is not None:",
            "    print(bias.selection.summary())",
            "else:",
            '    print("selection model:", bias.selection_problem)',
            "for fail_safe in bias.fail_safe:",
            "    print(fail_safe.describe())",
        ]
        bias_argument = ", bias=bias"
    comparison_argument = ""
    if code.comparison is not None:
        body += [
            "",
            "# 5d. The model and its neighbours: moderator changes refitted by ML, heterogeneity",
            "# changes by REML; likelihood-ratio tests against the model fitted the same way.",
            "comparison = model_comparison(res)",
            "print(comparison.summary())",
        ]
        comparison_argument = ", comparison=comparison"
    heterogeneity_argument = ""
    if code.heterogeneity is not None:
        ptr = py_string(code.heterogeneity.scale_design.moderators[0])
        body += [
            "",
            "# 5e. Does the heterogeneity depend on PTR? The location-scale model",
            "# (log tau2 = a0 + a1 PTR), as the Moderators page refits the model.",
            "heterogeneity = refit_with(",
            f"    res, list(res.design.term_labels), res.method, scale=[{ptr}]",
            ")",
            "print(heterogeneity)",
        ]
        heterogeneity_argument = ", heterogeneity=heterogeneity"
    wild_argument = ""
    if code.wild_bootstrap:
        body += wild_bootstrap_lines(code)
        wild_argument = ", wild_bootstrap=wild"
    body += [
        "",
        "# 6. Compare with the dashboard's results download of this analysis.",
        f"ours = results_frame(res, on_r_scale={code.on_r_scale}{robust_argument}{bias_argument}"
        f"{comparison_argument}{heterogeneity_argument}{wild_argument})",
        'dashboard = unquoted(pd.read_csv(HERE / "dashboard_results.csv", comment="#"))',
        f"columns = {list(COMPARED_COLUMNS)!r}",
        "assert len(ours) == len(dashboard), (len(ours), len(dashboard))",
        "theirs = dashboard[columns].to_numpy(dtype=float)",
        "mine = ours[columns].to_numpy(dtype=float)",
        f"# Agreement: |ours - dashboard| <= {RELATIVE_TOLERANCE:g} * |dashboard| + "
        f"{ABSOLUTE_TOLERANCE:g}",
        "# R^2 and I^2 are percentages built from variance estimates: their error is relative to",
        "# the full scale (100%); an I^2 at the zero boundary is 0 in one fit, a hair above in another.",
        'percent = (dashboard["name"] == "R2") | dashboard["name"].str.startswith("I2")',
        "scale = np.where(percent, 100.0, 0.0)[:, None]",
        "given = ~np.isnan(theirs)",
        'with np.errstate(invalid="ignore"):',
        f"    close = np.abs(mine - theirs) <= {RELATIVE_TOLERANCE:g} * np.maximum(np.abs(theirs), scale) + "
        f"{ABSOLUTE_TOLERANCE:g}",
        "agree = given & close",
        "for row, col in zip(*np.nonzero(given & ~agree), strict=True):",
        '    print(f"differs: {dashboard.section[row]} {dashboard.name[row]} {columns[col]}: "',
        '          f"dashboard {theirs[row, col]:.10g}, alliance_core {mine[row, col]:.10g}")',
        'print(f"agreement with the dashboard: {agree.sum()} of {given.sum()} numbers within '
        f'{RELATIVE_TOLERANCE:g}")',
        "sys.exit(0 if agree.sum() == given.sum() else 1)",
    ]
    return "\n".join([*header, "", *body, ""])


def wild_bootstrap_lines(code: ModelCode) -> list[str]:
    """Step 5f: each of the Moderators page's cluster wild bootstrap tests run again with its
    terms, replicates, seed, weights, residual adjustment, covariance type and cluster; the
    draws come from the seeded generator, so F and p are the dashboard's."""
    cluster = py_string(code.robust.cluster) if code.robust is not None else "None"
    lines = [
        "",
        "# 5f. Cluster wild bootstrap tests (Joshi, Pustejovsky & Beretvas, 2022), as the",
        "# Moderators page ran them: the same terms, replicates, seed and weights, so the same",
        "# draws and the same F and p.",
        "wild = {}",
    ]
    for label, cwb in (code.wild_bootstrap or {}).items():
        terms = "[" + ", ".join(py_string(t) for t in cwb.terms) + "]"
        seed = "None" if cwb.seed is None else str(int(cwb.seed))
        lines += [
            f"wild[{py_string(label)}] = res.wild_bootstrap(",
            f"    {terms},",
            f"    R={int(cwb.R)},",
            f"    seed={seed},",
            f"    auxiliary={py_string(cwb.auxiliary)},",
            f"    adjust={py_string(cwb.adjust)},",
            f"    type={py_string(cwb.type)},",
            f"    cluster={cluster},",
            ")",
            f"print(wild[{py_string(label)}])",
        ]
    return lines
