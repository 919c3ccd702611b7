"""Tables and files built from a fitted model, for display and download (no Streamlit here).

Numbers come from the ``MetaResult``; this module only lays them out: display tables with
sensibly rounded text, and a tidy results CSV with full precision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alliance_core.analyses.run import AnalysisRun
from alliance_core.analyses.state import ModelFlags
from alliance_core.figures import MAX_PROFILES, PTRSlopeReadout
from alliance_core.formatting import (
    escape_markdown,
    format_coefficient,
    format_number,
    format_p,
    format_p_cell,
)
from alliance_core.handover import results_table
from alliance_core.handover.provenance import Provenance, with_comment_lines
from alliance_core.handover.results_table import (  # noqa: F401  (RESULT_COLUMNS: re-exported)
    RESULT_COLUMNS,
    categorical_moderators,
    to_csv_text,
)
from alliance_core.model.nesting import display_name
from alliance_core.model.results import MetaResult

PROFILE_NAME = "Profile name"
# What a blank what-if cell means, written in the cell instead of the editor's "None".
# What a blank what-if cell means: the numeric moderator's mean or the categorical one's
# reference level (which need not be typical of the data, so the editor does not say "typical").
TYPICAL_VALUE = "mean / reference level"


# -- number formats ----------------------------------------------------------------------------
def fmt_p(p: float | None) -> str:
    """A table cell under "p" (APA: ".021", "< .001", "> .999"); "–" when missing."""
    if p is None or not np.isfinite(p):
        return "–"
    return format_p_cell(p)


def fmt_num(value: float | None, digits: int = 2) -> str:
    """Fixed decimals with a true minus sign; "–" for missing values."""
    if value is None or not np.isfinite(value):
        return "–"
    text = f"{value:.{digits}f}"
    if text.startswith("-"):
        # A value that rounds to zero is shown as 0, not as "−0.000".
        text = text[1:] if float(text) == 0 else "\u2212" + text[1:]
    return text


def fmt_small(value: float | None) -> str:
    """Variance components: four decimals, or three significant digits when that shows zero."""
    if value is None or not np.isfinite(value):
        return "–"
    text = fmt_num(value, 4)
    if text.lstrip("\u2212") == "0.0000" and value != 0:
        return f"{value:.3g}"
    return text


def fmt_interval(low: float, high: float, digits: int = 2) -> str:
    return f"[{fmt_num(low, digits)}, {fmt_num(high, digits)}]"


def test_label(statistic: float, df: int | None, df2: int | None) -> str:
    """ "QM(3) = 9.02" for a chi-square test, "F(3, 807) = 3.01" for an F test."""
    if df2 is not None:
        return f"F({df}, {df2}) = {statistic:.2f}"
    return f"QM({df}) = {statistic:.2f}"


# -- display tables ----------------------------------------------------------------------------
def term_labels(res: MetaResult) -> dict[str, str]:
    """Readable names of coefficients: "alliance_rater = observer (vs patient)", "log PTR"."""
    labels = {"intrcpt": "Intercept"}
    pieces: dict[str, str] = {}  # each main-effect coefficient as a part of an interaction
    for term in res.design.terms:
        if term.kind == "numeric":
            labels[term.column] = pieces[term.column] = display_name(term.column)
        elif term.kind == "categorical":
            for level in term.levels[1:]:
                label = f"{term.column}{level}"
                labels[label] = f"{term.column} = {level} (vs {term.reference})"
                pieces[label] = f"{term.column} = {level}"
        else:
            # "log PTR × alliance_rater = observer": how the PTR slope of observer-rated
            # alliance differs from the slope of the reference level.
            references = ", ".join(
                f"{part.column} = {part.reference}"
                for part in term.parts
                if part.kind == "categorical"
            )
            for label in term.labels:
                text = " × ".join(pieces.get(piece, piece) for piece in label.split(":"))
                labels[label] = text + (f" (vs {references})" if references else "")
    return labels


def coefficient_table(res: MetaResult) -> pd.DataFrame:
    """The meta-regression coefficients (Fisher's z scale for correlations) for display.

    Each row gets the decimals its standard error needs (at least three), so a raw-PTR slope
    of -0.0021 (SE 0.0009) is not shown as -0.002 (SE 0.001).
    """
    stat = "z" if res.ddf is None else "t"
    labels = term_labels(res)
    coefficients = res.coefficients
    estimates, ses, intervals = [], [], []
    for _, row in coefficients.iterrows():
        estimate, se = format_coefficient(row["estimate"], row["se"], minimum=3)
        low, _ = format_coefficient(row["ci_lb"], row["se"], minimum=3)
        high, _ = format_coefficient(row["ci_ub"], row["se"], minimum=3)
        estimates.append(estimate)
        ses.append(se)
        intervals.append(f"[{low}, {high}]")
    return pd.DataFrame(
        {
            "Term": [labels.get(term, term) for term in coefficients.index],
            "Estimate": estimates,
            "SE": ses,
            stat: [fmt_num(v, 2) for v in coefficients["statistic"]],
            "p": [fmt_p(v) for v in coefficients["pval"]],
            f"{res.level:.0%} CI": intervals,
        }
    )


FLAG_MARK = "⚠ not trustworthy"


def inference_coefficient_table(run: AnalysisRun, flags: ModelFlags | None = None) -> pd.DataFrame:
    """The coefficients under the run's chosen inference (model-based or CR2), with a df column
    whenever the tests are t tests (Satterthwaite df per coefficient under CR2). With the
    run's ``flags``, a "Caution" column marks each coefficient whose test cannot be trusted."""
    res = run.result
    labels = term_labels(res)
    coefficients = run.inference_table
    estimates, ses, intervals = [], [], []
    for _, row in coefficients.iterrows():
        estimate, se = format_coefficient(row["estimate"], row["se"], minimum=3)
        low, _ = format_coefficient(row["ci_lb"], row["se"], minimum=3)
        high, _ = format_coefficient(row["ci_ub"], row["se"], minimum=3)
        estimates.append(estimate)
        ses.append(se)
        intervals.append(f"[{low}, {high}]")
    table = {
        "Term": [labels.get(term, term) for term in coefficients.index],
        "Estimate": estimates,
        "SE": ses,
        run.statistic_name: [fmt_num(v, 2) for v in coefficients["statistic"]],
    }
    if coefficients["df"].notna().any():
        digits = 1 if run.robust is not None else 0
        table["df"] = [fmt_num(v, digits) for v in coefficients["df"]]
    table["p"] = [fmt_p(v) for v in coefficients["pval"]]
    table[f"{res.level:.0%} CI"] = intervals
    if flags is not None:
        flagged = flags.flagged_terms(coefficients.index)
        if flagged:
            table["Caution"] = [FLAG_MARK if t in flagged else "" for t in coefficients.index]
    return pd.DataFrame(table)


def omnibus_label(run: AnalysisRun) -> str:
    """The test of all moderators under the chosen inference: "F(2, 7.3) = 4.10" for HTZ."""
    statistic, df1, df2, _ = run.omnibus
    if df2 is not None and run.robust is not None:
        return f"F({df1}, {df2:.1f}) = {statistic:.2f}"
    return test_label(statistic, df1, df2)


def interaction_words(res: MetaResult, column: str) -> str:
    """A moderator as the Wald table names it; an interaction as "log PTR × alliance_rater"."""
    term = res.design.term(column)
    if term.kind != "interaction":
        return column
    return " × ".join(display_name(part.column) for part in term.parts)


def inference_wald_table(run: AnalysisRun, flags: ModelFlags | None = None) -> pd.DataFrame:
    """Each categorical moderator's omnibus test under the chosen inference (HTZ for CR2); with
    ``flags``, a "Caution" column marks a test that cannot be trusted (df2 < 4 under CR2, a
    level from one study, too few studies)."""
    res = run.result
    rows = []
    marked = False
    # Each categorical moderator, then each interaction (does the PTR slope differ between
    # its levels? all interaction coefficients tested together).
    tested = [*categorical_moderators(res), *(t.column for t in res.design.interactions)]
    for column in tested:
        test = run.wald_test([column])
        caution = None
        if flags is not None:
            caution = flags.omnibus_caution(res.design.term(column).labels)
            if run.robust is not None and test.df2 is not None and not test.df2 >= 4:
                caution = caution or "few denominator degrees of freedom"
        marked = marked or bool(caution)
        if run.robust is not None:
            label = f"F({test.df}, {test.df2:.1f}) = {test.statistic:.2f}"
        else:
            label = test_label(test.statistic, test.df, test.df2)
        rows.append(
            {
                "Moderator": interaction_words(res, column),
                "Levels": len(res.design.term(column).labels) + 1,
                "Test": label,
                "p": fmt_p(test.pval),
                "Caution": FLAG_MARK if caution else "",
            }
        )
    columns = ["Moderator", "Levels", "Test", "p"] + (["Caution"] if marked else [])
    return pd.DataFrame(rows, columns=["Moderator", "Levels", "Test", "p", "Caution"])[columns]


VARIANCE_NAMES = {
    "tau2": "τ² (between studies)",
    "sigma2.study": "σ² between studies",
    "sigma2.es": "σ² within studies (between effect sizes)",
}


def variance_interval_table(intervals: pd.DataFrame, level: float) -> pd.DataFrame:
    """Variance components with their confidence intervals (Q-profile for τ², profile
    likelihood for the three-level σ²), for display."""
    return pd.DataFrame(
        {
            "Component": [VARIANCE_NAMES.get(name, name) for name in intervals.index],
            "Estimate": [fmt_small(v) for v in intervals["estimate"]],
            f"{level:.0%} CI": [
                f"[{fmt_small(low)}, {fmt_small(high)}]"
                for low, high in zip(intervals["ci_lb"], intervals["ci_ub"], strict=True)
            ],
        }
    )


def wald_table(res: MetaResult) -> pd.DataFrame:
    """One omnibus test per categorical moderator: are all its level differences zero?"""
    rows = []
    for column in categorical_moderators(res):
        test = res.wald_test([column])
        rows.append(
            {
                "Moderator": interaction_words(res, column),
                "Levels": len(res.design.term(column).labels) + 1,
                "Test": test_label(test.statistic, test.df, test.df2),
                "p": fmt_p(test.pval),
            }
        )
    return pd.DataFrame(rows, columns=["Moderator", "Levels", "Test", "p"])


def heterogeneity_table(res: MetaResult) -> pd.DataFrame:
    """Variance components, I² (total and by level) and the Q test, with what each means.

    Variances are on the model scale: Fisher's z for correlations, else the effect size as
    given (the caption under the table says which).
    """
    rows: list[tuple[str, str, str]] = []
    if res.is_three_level:
        rows += [
            (
                "σ² between studies",
                fmt_small(res.sigma2["study"]),
                "variance of true effects between studies (model scale)",
            ),
            (
                "σ² within studies",
                fmt_small(res.sigma2["es"]),
                "variance of true effects between effect sizes of one study",
            ),
            (
                "I² total",
                f"{res.I2:.1f}%",
                "share of observed variation that is not sampling error",
            ),
            (
                "I² between studies",
                f"{res.I2_levels['study']:.1f}%",
                "part of I² at the study level",
            ),
            (
                "I² within studies",
                f"{res.I2_levels['es']:.1f}%",
                "part of I² at the effect-size level",
            ),
        ]
    elif res.method == "EE":
        rows.append(("τ²", "0 (assumed)", "an equal-effects model assumes no true heterogeneity"))
        rows.append(("I²", f"{res.I2:.1f}%", "share of observed variation beyond sampling error"))
    else:
        ci = res.tau2_ci
        tau2 = fmt_small(res.tau2) + (f" [{fmt_small(ci[0])}, {fmt_small(ci[1])}]" if ci else "")
        i2_ci = res.I2_ci
        i2 = f"{res.I2:.1f}%" + (f" [{i2_ci[0]:.1f}%, {i2_ci[1]:.1f}%]" if i2_ci else "")
        rows += [
            ("τ²", tau2, "variance of true effects (model scale), with its Q-profile CI"),
            ("τ", fmt_num(math.sqrt(res.tau2), 3), "standard deviation of true effects"),
            ("I²", i2, "share of observed variation that is not sampling error"),
            ("H²", fmt_num(res.H2, 2), "total variation relative to sampling variation"),
        ]
    residual = "residual " if res.p > 1 else ""
    rows.append(
        (
            f"Q ({residual}heterogeneity)",
            f"Q({res.QE_df}) = {res.QE:.1f}, p {_p_phrase(res.QE_pval)}",
            "tests whether effects differ more than sampling error explains",
        )
    )
    return pd.DataFrame(rows, columns=["Statistic", "Value", "Meaning"])


def _p_phrase(p: float) -> str:
    return format_p(p, symbol=False)


# -- downloads ---------------------------------------------------------------------------------
def results_frame(
    run: AnalysisRun, on_r_scale: bool = True, robust=None, **sections
) -> pd.DataFrame:
    """The results download as a table (see ``alliance_core.handover.results_table.results_frame``),
    with a first column naming the model the row belongs to; ``robust`` (a RobustResult of
    this run) adds its rows, and ``sections`` (bias, comparison, heterogeneity, wild_bootstrap) theirs."""
    frame = results_table.results_frame(run.result, on_r_scale, robust, **sections)
    frame.insert(0, "model", model_label(run))
    return frame


def model_label(run: AnalysisRun) -> str:
    """Which model a results row belongs to: "without moderators" or "with moderators: …"."""
    if not run.moderator_columns:
        return "without moderators"
    return "with moderators: " + ", ".join(display_name(m) for m in run.moderator_columns)


def results_csv(
    run: AnalysisRun,
    on_r_scale: bool = True,
    provenance: Provenance | None = None,
    pooled: AnalysisRun | None = None,
    robust=None,
    *,
    bias=None,
    comparison=None,
    heterogeneity=None,
    wild_bootstrap=None,
) -> bytes:
    """The results file after ``# key: value`` provenance lines when given; with ``pooled``,
    one file holding the pooled model's rows first and then the model with moderators, each
    row labelled in the "model" column; ``robust`` (cluster-robust inference on ``run``) adds
    the robust rows of ``run``, as the reproduction scripts compare them. ``bias`` (the
    pooled model's publication-bias results) goes with the model without moderators;
    ``comparison``, ``heterogeneity`` and ``wild_bootstrap`` (the Moderators page's) with
    ``run``."""
    own_bias = bias if run.result.p == 1 else None
    frames = [
        results_frame(
            run,
            on_r_scale,
            robust,
            bias=own_bias,
            comparison=comparison,
            heterogeneity=heterogeneity,
            wild_bootstrap=wild_bootstrap,
        )
    ]
    if pooled is not None and pooled is not run:
        frames.insert(0, results_frame(pooled, on_r_scale, pooled.robust, bias=bias))
    return with_comment_lines(to_csv_text(pd.concat(frames, ignore_index=True)), provenance)


def analysed_rows(run: AnalysisRun) -> pd.DataFrame:
    """The rows the model was fitted to: after the filter and without rows it left out."""
    return run.result.data


def data_csv(run: AnalysisRun, provenance: Provenance | None = None) -> bytes:
    """The analysed rows as CSV, after the provenance lines when given."""
    return with_comment_lines(to_csv_text(analysed_rows(run)), provenance)


# -- what-if profiles --------------------------------------------------------------------------
@dataclass(frozen=True)
class ProfileColumns:
    """The moderators a profile can set (PTR is the curve's x axis, so never one of them)."""

    categorical: Mapping[str, tuple[str, ...]]
    numeric: tuple[str, ...]

    @classmethod
    def of(cls, res: MetaResult, ptr_column: str | None) -> ProfileColumns:
        categorical = {}
        numeric = []
        for term in res.design.terms:
            if term.column == ptr_column or term.kind == "interaction":
                continue  # an interaction follows its parts' values
            if term.kind == "categorical":
                categorical[term.column] = tuple(term.levels)
            else:
                numeric.append(term.column)
        return cls(categorical, tuple(numeric))

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.categorical, *self.numeric)

    def empty_editor_frame(self, rows: int = MAX_PROFILES) -> pd.DataFrame:
        """Rows to fill in, every moderator cell reading TYPICAL_VALUE: rows that set nothing
        and have no name draw nothing, so no "add row" step is needed. Numeric cells are text
        so that they can say TYPICAL_VALUE too; profiles_from_rows reads the numbers."""
        columns = {PROFILE_NAME: pd.Series([""] * rows, dtype="string")}
        for column in self.names:
            columns[column] = pd.Series([TYPICAL_VALUE] * rows, dtype="string")
        return pd.DataFrame(columns)


def editor_frame_for(
    profiles: Sequence[Mapping], columns: ProfileColumns
) -> tuple[pd.DataFrame, list[str]]:
    """The what-if editor filled with ``profiles`` (from a link), and a sentence for every value
    that does not fit this model (an unknown moderator or level), which is left out."""
    frame = columns.empty_editor_frame()
    problems: list[str] = []
    for position, profile in enumerate(list(profiles)[: len(frame)]):
        name = str(profile.get("name") or "")
        frame.loc[position, PROFILE_NAME] = name
        for column, value in dict(profile.get("values") or {}).items():
            label = f"Link profile '{name or position + 1}'"
            if column in columns.categorical:
                if str(value) not in columns.categorical[column]:
                    problems.append(f"{label}: '{value}' is not a level of {column}; left out.")
                    continue
                frame.loc[position, column] = str(value)
            elif column in columns.numeric:
                try:
                    frame.loc[position, column] = f"{float(value):g}"
                except (TypeError, ValueError):
                    problems.append(f"{label}: {column} needs a number, not '{value}'; left out.")
            else:
                problems.append(
                    f"{label}: '{column}' is not a moderator a profile can set here; left out."
                )
    return frame, problems


def profiles_from_rows(rows: pd.DataFrame, columns: ProfileColumns) -> tuple[list[dict], list[str]]:
    """What-if profiles ({"name", "values"}) from the editor's rows, and notes on rows not used.

    A blank cell or one reading TYPICAL_VALUE leaves that moderator at its mean or reference level; a row with no name is named by
    the values it sets; a row with nothing in it is skipped; beyond four profiles the rest are
    dropped.
    """
    profiles: list[dict] = []
    notes: list[str] = []
    for position, (_, row) in enumerate(rows.iterrows(), start=1):
        values: dict[str, object] = {}
        for column in columns.categorical:
            value = row.get(column)
            if _filled(value):
                if str(value) not in columns.categorical[column]:
                    notes.append(f"Row {position}: '{value}' is not a level of {column}; ignored.")
                    continue
                values[column] = str(value)
        for column in columns.numeric:
            value = row.get(column)
            if _filled(value):
                try:
                    values[column] = float(value)
                except (TypeError, ValueError):
                    notes.append(f"Row {position}: {column} needs a number, not '{value}'.")
        name = row.get(PROFILE_NAME)
        name = str(name).strip() if _filled(name) else ""
        if not values and not name:
            continue
        # An unnamed profile is named by what it sets, which reads well in the legend.
        described = ", ".join(
            f"{column} = {value:g}" if isinstance(value, float) else f"{column} = {value}"
            for column, value in values.items()
        )
        profiles.append({"name": name or described, "values": values})
    if len(profiles) > MAX_PROFILES:
        notes.append(
            f"Only the first {MAX_PROFILES} profiles are drawn ({len(profiles)} were given)."
        )
        profiles = profiles[:MAX_PROFILES]
    return profiles, notes


def _filled(value) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip() not in ("", TYPICAL_VALUE)
    try:
        return not pd.isna(value)
    except (TypeError, ValueError):
        return True


def readout_table(
    readouts: Sequence[tuple[str, PTRSlopeReadout]], cautions: Sequence[str | None] = ()
) -> pd.DataFrame:
    """One row per profile: its predicted r at both PTR values (with CIs), its own change in r
    (with CI; see :class:`~alliance_core.figures.PTRSlopeReadout`) and the test's p. With
    ``cautions`` (one per readout, ``marginal_flags.change_caution``), a "Caution" column marks
    each change whose test cannot be trusted, as the coefficient table marks its rows.

    Profiles differ on Fisher's z by a constant, so their z changes agree; on the r scale each
    profile changes by its own amount, which is why every profile gets its own row.
    """
    rows = []
    for name, out in readouts:
        pct = f"{out.level * 100:g}%"
        rows.append(
            {
                "Profile": name,
                f"r at PTR {out.from_ptr:g} [{pct} CI]": _r_interval(out.r_from, out.r_from_ci),
                f"r at PTR {out.to_ptr:g} [{pct} CI]": _r_interval(out.r_to, out.r_to_ci),
                f"Change in r [{pct} CI]": _r_interval(
                    out.difference_r, out.difference_r_ci, digits=3
                ),
                "p": format_p_cell(out.pval),
            }
        )
    table = pd.DataFrame(rows)
    if any(cautions):
        table["Caution"] = [FLAG_MARK if caution else "" for caution in cautions]
    return table


def readout_inference(
    readouts: Sequence[tuple[str, PTRSlopeReadout]], cautions: Sequence[str | None] = ()
) -> str:
    """Under robust inference: the df each change was tested on (the change's own contrast,
    which equals the PTR slope's only when PTR enters the model as one term), in the order of
    the table's rows and named by them when there are several, each flagged change marked and
    its reason given in ModelFlags' words. Markdown: profile names are user text, escaped here
    once."""
    cautions = list(cautions) or [None] * len(readouts)
    tested = [
        (name, out, caution)
        for (name, out), caution in zip(readouts, cautions, strict=True)
        if out.df is not None
    ]
    if not tested:
        return ""
    named = len(tested) > 1
    dfs = "; ".join(
        (f"{escape_markdown(name)}: " if named else "")
        + format_number(out.df, 1)
        + (f" {FLAG_MARK}" if caution else "")
        for name, out, caution in tested
    )
    text = (
        ":material/shield: Cluster-robust (CR2): each change in r is a contrast of its own, "
        f"tested with t on its own Satterthwaite df ({dfs}); the r values at each PTR use "
        "their own df too."
    )
    for name, _, caution in tested:
        if caution:
            which = f"The change for {escape_markdown(name)}" if named else "The change"
            text += f" {which} cannot be trusted: {escape_markdown(caution)}."
    return text


def _r_interval(value: float, ci: tuple[float, float], digits: int = 2) -> str:
    lo, hi = sorted(ci)
    return (
        f"{format_number(value, digits)} [{format_number(lo, digits)}, {format_number(hi, digits)}]"
    )


def effect_form_rows(effect_forms: tuple[tuple[str, tuple[int, ...]], ...]) -> pd.DataFrame:
    """One line per usable row: its spreadsheet row and the form its effect size was read in."""
    records = [{"row": row, "form": form} for form, rows in effect_forms for row in rows]
    return pd.DataFrame(records, columns=["row", "form"]).sort_values("row", kind="stable")
