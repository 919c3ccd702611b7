"""The specification curve of the PTR moderator: how its estimate depends on analytic choices.

A specification curve (Simonsohn, Simmons & Nelson 2020, *Nature Human Behaviour* 4,
1208-1214) fits every reasonable variant of an analysis and shows all the estimates at once.
Here PTR is always in the model; every subset of the chosen control moderators is a
specification, crossed with the two-level and three-level models and with the estimators the
user picks. Each specification's PTR coefficient (estimate, standard error, confidence
interval, p) and the change in the predicted effect from PTR = 1 to PTR = 10 patients per
therapist are collected in one table; :func:`alliance_core.figures.specification_figure` draws
the sorted estimates above a panel that marks the choices behind each.

All specifications are fitted to the same rows: those complete on the effect size, PTR,
every control and (for three-level models) the study, so that the estimates differ only by
the analytic choices. The model matrix is built once; each specification selects its columns.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alliance_core.analyses.run import effect_size_table
from alliance_core.data.effect_sizes import transf
from alliance_core.data.mapping import ColumnMapping
from alliance_core.errors import AnalysisError
from alliance_core.model.components import BLAS
from alliance_core.model.design import build_design_matrix
from alliance_core.model.fit_inputs import THREE_LEVEL_METHODS, TWO_LEVEL_METHODS
from alliance_core.model.refitting import refit
from alliance_core.model.robust import FEW_CLUSTERS, MIN_RELIABLE_DF, robust_from_blocks
from alliance_core.model.robust_variance import marginal_blocks

MODELS = ("two-level", "three-level")
RESULT_COLUMNS = (
    "model",
    "method",
    "rho",
    "inference",
    "k",
    "n_studies",
    "estimate",
    "se",
    "statistic",
    "pval",
    "ci_lb",
    "ci_ub",
    "df",
    "significant",
    "caution",
    "delta",
    "independent",
    "error",
)
PTR_FROM, PTR_TO = 1.0, 10.0


@dataclass(frozen=True, eq=False)
class SpecificationCurve:
    """Every specification's PTR coefficient.

    ``table`` has one row per specification: a boolean column per control (True where the
    specification includes it), ``model``, ``method``, ``k`` and ``n_studies``, the PTR
    ``rho`` (the CHE sampling correlation of a three-level fit; NaN for independent sampling
    errors and two-level fits), ``inference`` ("model", or "CR2": cluster-robust by study with
    the coefficient's Satterthwaite df), the PTR
    coefficient's ``estimate``, ``se``, ``statistic``, ``pval``, ``ci_lb``, ``ci_ub``, ``df``
    (the CR2 Satterthwaite df; NaN for model-based inference), ``significant`` (p < 1 - level),
    ``caution`` (why the PTR test cannot be trusted, by the rules of the dashboard's flags:
    fewer than 10 studies, or CR2 df below 4; such specifications are marked in the figure and
    never counted as significant or not; else None), ``delta`` (predicted effect at PTR = 10 minus at PTR = 1,
    other moderators at their mean or reference level, on the ``delta_scale``: "r" for
    correlations, else the model scale), ``independent`` (True for a two-level fit to rows
    nested in studies, which treats them as independent and overstates precision: such
    specifications are marked in the figure and not counted in ``share_significant``) and
    ``error`` (why a specification could not be fitted, else None).
    """

    table: pd.DataFrame
    controls: tuple[str, ...]
    ptr_column: str
    ptr_scale: str
    level: float
    delta_scale: str | None
    k: int
    n_studies: int | None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fitted(self) -> pd.DataFrame:
        """The specifications that could be estimated."""
        return self.table[self.table["error"].isna()]

    @property
    def counted(self) -> pd.DataFrame:
        """The estimated specifications that are valid for the data: all but two-level fits
        that treat nested effect sizes as independent (unless those are all there is)."""
        fitted = self.fitted
        valid = fitted[~fitted["independent"].astype(bool)]
        return valid if len(valid) else fitted

    @property
    def trusted(self) -> pd.DataFrame:
        """The counted specifications whose PTR test can be read (no ``caution``)."""
        counted = self.counted
        return counted[counted["caution"].isna()]

    @property
    def n_cautioned(self) -> int:
        """Counted specifications whose PTR test cannot be trusted (marked, not counted)."""
        return len(self.counted) - len(self.trusted)

    @property
    def n_independent(self) -> int:
        """Specifications that treat nested effect sizes as independent (marked, not counted)."""
        return int(self.table["independent"].astype(bool).sum())

    @property
    def share_significant(self) -> float:
        """Share of the trusted specifications in which PTR is significant (either sign); NaN
        when no specification's test can be trusted."""
        trusted = self.trusted
        return float(trusted["significant"].mean()) if len(trusted) else float("nan")

    @property
    def n_failed(self) -> int:
        return int(self.table["error"].notna().sum())

    def find(
        self,
        controls: Sequence[str] = (),
        model: str = "three-level",
        method: str = "REML",
        rho: float | None = None,
        inference: str = "model",
    ) -> int:
        """Row label of the specification with exactly these controls, model, estimator, rho
        (three-level only; None or 0 for independent sampling errors) and inference."""
        unknown = sorted(set(controls) - set(self.controls))
        if unknown:
            raise AnalysisError(
                f"'{unknown[0]}' is not one of the specification curve's controls "
                f"({', '.join(self.controls)})."
            )
        chosen = np.ones(len(self.table), dtype=bool)
        for control in self.controls:
            chosen &= self.table[control].to_numpy() == (control in controls)
        chosen &= (self.table["model"] == model).to_numpy()
        chosen &= (self.table["method"] == method).to_numpy()
        chosen &= (self.table["inference"] == inference).to_numpy()
        table_rho = self.table["rho"].to_numpy(dtype=float)
        if model == "three-level" and rho:
            chosen &= np.isclose(table_rho, float(rho))
        else:
            chosen &= np.isnan(table_rho)
        if not chosen.any():
            raise AnalysisError(f"No specification with the {model} model and {method} estimator.")
        return int(self.table.index[np.argmax(chosen)])

    def describe(self) -> str:
        fitted = self.counted
        n = len(self.table)
        if fitted.empty:
            return "Specification curve: no specification could be estimated."
        alpha = 1.0 - self.level
        negative = int((fitted["estimate"] < 0).sum())
        trusted = self.trusted
        significant = int(trusted["significant"].sum())
        sig_negative = int((trusted["significant"] & (trusted["estimate"] < 0)).sum())
        name = "log PTR" if self.ptr_scale == "log" else "PTR"
        parts = [
            f"Specification curve: the {name} coefficient was estimated in {n} "
            f"specifications (every subset of {len(self.controls)} control moderator(s), "
            "crossed with the chosen models and estimators), all on the same "
            f"{self.k} effect sizes.",
        ]
        independent = self.n_independent
        counted_all = len(fitted) < len(self.fitted) or not independent
        if independent and counted_all:
            parts.append(
                f"{independent} of them fit the two-level model to effect sizes nested in "
                "studies as if they were independent, which makes p-values too small; they "
                "are marked in the figure and not counted below."
            )
        elif independent:
            parts.append(
                "Every specification here fits the two-level model to effect sizes nested in "
                "studies as if they were independent, which makes p-values too small."
            )
        cautioned = self.n_cautioned
        if cautioned:
            reasons = "; ".join(dict.fromkeys(fitted["caution"].dropna()))
            parts.append(
                f"The PTR test of {cautioned} of {len(fitted)} cannot be trusted ({reasons}); "
                "they are marked in the figure and not called significant or not."
            )
        if len(trusted):
            tested = f"of the {len(trusted)} whose test can be trusted, " if cautioned else ""
            verdict = (
                f"and, {tested}significant at p < {alpha:g} in {significant} "
                f"({self.share_significant:.0%}; {sig_negative} of them negative)"
            )
        else:
            verdict = "and no specification's test can be trusted"
        parts.append(
            f"It was negative in {negative} of {len(fitted)} {verdict}. "
            f"Estimates ranged from {fitted['estimate'].min():.3f} to "
            f"{fitted['estimate'].max():.3f} (median {fitted['estimate'].median():.3f})."
        )
        if self.n_failed:
            parts.append(f"{self.n_failed} specification(s) could not be estimated.")
        parts.append(
            "The specifications share the same data, so this share describes how robust the "
            "result is to these choices; it is not an independent replication, and choices "
            "not listed here (other data, other coding) are not covered."
        )
        return " ".join(parts)


def specification_curve(
    data: pd.DataFrame,
    mapping_or_columns: ColumnMapping | Mapping[str, str],
    ptr_column: str,
    controls: Sequence[str],
    models: Sequence[str] = MODELS,
    methods: Sequence[str] = ("REML",),
    progress: Callable[[int, int], None] | None = None,
    *,
    test: str = "z",
    level: float = 0.95,
    ptr_scale: str | None = None,
    reference: Mapping[str, object] | None = None,
    rhos: Sequence[float | None] = (None,),
    inferences: Sequence[str] = ("model",),
) -> SpecificationCurve:
    """Fit every specification: PTR plus each subset of ``controls``, by model and estimator,
    and for the three-level model by each CHE sampling correlation in ``rhos`` (None or 0:
    independent sampling errors), each reported under every inference in ``inferences``
    ("model" and/or "CR2": cluster-robust by study, Satterthwaite df, which needs a study
    column; one fit serves both inferences).

    ``mapping_or_columns`` is a :class:`ColumnMapping` (effect sizes are computed from it, as
    for the dashboard's analyses, which also adds the ``PTR`` and ``log_PTR`` columns) or a
    mapping {"yi": ..., "vi": ..., "study": ...} naming columns of ``data`` that already hold
    the effect sizes. ``ptr_column`` is the numeric PTR moderator (e.g. ``log_PTR``);
    ``ptr_scale`` says whether it is log(PTR) or PTR ("log" or "raw"; by default "log" when
    the name starts with ``log_`` or ``ln_``). ``test`` is "z" or "t" (Knapp-Hartung in the
    two-level model, t on k - p df in the three-level model). Estimators a model does not
    offer (e.g. DL for three-level) are skipped with a note. ``progress(done, total)`` is
    called after each specification.
    """
    table, study, delta_scale = _effect_sizes(data, mapping_or_columns)
    combos, notes = _model_method_pairs(models, methods, study)
    rho_values = list(dict.fromkeys(None if not r else float(r) for r in rhos)) or [None]
    inferences = list(dict.fromkeys(inferences)) or ["model"]
    unknown = sorted(set(inferences) - {"model", "CR2"})
    if unknown:
        raise AnalysisError(f"Unknown inference '{unknown[0]}'; choose model or CR2.")
    if "CR2" in inferences and not study:
        raise AnalysisError(
            "Cluster-robust (CR2) specifications need a study column to cluster by."
        )
    controls = list(dict.fromkeys(controls))
    _check_columns(table, ptr_column, controls, study, combos)
    ptr_scale = ptr_scale or ("log" if ptr_column.lower().startswith(("log_", "ln_")) else "raw")
    if ptr_scale not in ("log", "raw"):
        raise AnalysisError(f"PTR scale '{ptr_scale}': choose 'log' or 'raw'.")

    needed = ["yi", "vi", ptr_column, *controls, *([study] if study else [])]
    sample = table.dropna(subset=list(dict.fromkeys(needed)))
    if len(sample) < len(table):
        notes.append(
            f"{len(table) - len(sample)} of {len(table)} effect sizes lack a value in PTR or a "
            "control and were left out of every specification, so that all are fitted to the "
            "same rows."
        )
    design, X = build_design_matrix(sample, [ptr_column, *controls], reference)
    if design.terms[0].kind != "numeric":
        raise AnalysisError(f"PTR column '{ptr_column}' must hold numbers.")
    blocks = _column_blocks(design)
    x_from, x_to = _typical_rows(design, ptr_scale)
    inputs = _SpecificationInputs(
        y=sample["yi"].to_numpy(float),
        v=sample["vi"].to_numpy(float),
        X=X,
        names=design.names,
        studies=pd.factorize(sample[study].to_numpy())[0] if study else None,
        x_from=x_from,
        x_to=x_to,
        delta_scale=delta_scale,
        test=test,
        level=level,
    )
    nested = bool(study) and bool(sample[study].duplicated().any())
    clusters = int(sample[study].nunique()) if study else len(sample)
    # The dashboard's flags (ModelFlags): a moderator test with fewer than 10 studies.
    few_studies = (
        f"only {clusters} studies inform the moderator test (fewer than {FEW_CLUSTERS})"
        if clusters < FEW_CLUSTERS
        else None
    )
    subsets = [
        subset
        for size in range(len(controls) + 1)
        for subset in itertools.combinations(controls, size)
    ]
    fits = [
        (model, method, rho)
        for model, method in combos
        for rho in (rho_values if model == "three-level" else [None])
    ]
    total = len(subsets) * len(fits) * len(inferences)
    rows = []
    with BLAS.limit(limits=1, user_api="blas"):
        for model, method, rho in fits:
            start = None
            for subset in subsets:
                columns = [0, *blocks[ptr_column], *(j for c in subset for j in blocks[c])]
                results = _fit_specification(
                    inputs, columns, model, method, start, rho=rho, inferences=inferences
                )
                uses = {control: control in subset for control in controls}
                for inference, row in results.items():
                    theta = row.pop("theta", None)
                    if not subset and theta is not None:
                        # Warm start: every other specification of this model, estimator and
                        # rho starts its variance components where the PTR-only model ended.
                        start = theta
                    row["independent"] = model == "two-level" and nested
                    if row.get("error") is None:
                        row["caution"] = _caution(row, few_studies)
                    rows.append(
                        {
                            **uses,
                            "model": model,
                            "method": method,
                            "rho": np.nan if rho is None else rho,
                            "inference": inference,
                            **row,
                        }
                    )
                    if progress is not None:
                        progress(len(rows), total)
    result = pd.DataFrame(rows, columns=[*controls, *RESULT_COLUMNS])
    result.index.name = "specification"
    for column in ("error", "caution"):
        result[column] = result[column].astype(object).where(result[column].notna(), None)
    return SpecificationCurve(
        table=result,
        controls=tuple(controls),
        ptr_column=ptr_column,
        ptr_scale=ptr_scale,
        level=level,
        delta_scale=delta_scale,
        k=len(sample),
        n_studies=int(sample[study].nunique()) if study else None,
        notes=tuple(notes),
    )


def _effect_sizes(data, mapping_or_columns) -> tuple[pd.DataFrame, str | None, str | None]:
    """The table with yi and vi, the study column and the scale of ``delta``."""
    if isinstance(mapping_or_columns, ColumnMapping):
        mapping = mapping_or_columns
        return (
            effect_size_table(data, mapping),
            mapping.study,
            ("r" if mapping.on_fisher_z else None),
        )
    columns = dict(mapping_or_columns)
    unknown = sorted(set(columns) - {"yi", "vi", "study"})
    if unknown:
        raise AnalysisError(
            f"Specification curve: unknown column role '{unknown[0]}' (use yi, vi and study)."
        )
    table = data.copy()
    for role in ("yi", "vi"):
        name = columns.get(role, role)
        if name not in table.columns:
            raise AnalysisError(f"Specification curve: the data have no column '{name}' ({role}).")
        table[role] = pd.to_numeric(table[name], errors="coerce")
    return table, columns.get("study"), None


def _model_method_pairs(models, methods, study) -> tuple[list[tuple[str, str]], list[str]]:
    notes: list[str] = []
    models = list(dict.fromkeys(models))
    methods = list(
        dict.fromkeys("EE" if str(m).upper() == "FE" else str(m).upper() for m in methods)
    )
    if not models or not methods:
        raise AnalysisError("Specification curve: choose at least one model and one estimator.")
    for model in models:
        if model not in MODELS:
            raise AnalysisError(f"Unknown model '{model}'; choose two-level or three-level.")
    if "three-level" in models and not study:
        raise AnalysisError(
            "The three-level model needs a study column; map one or use the two-level model only."
        )
    pairs = []
    for model in models:
        offered = TWO_LEVEL_METHODS if model == "two-level" else THREE_LEVEL_METHODS
        for method in methods:
            if method not in offered:
                notes.append(f"The {model} model is not fitted by {method}; skipped.")
                continue
            pairs.append((model, method))
    if not pairs:
        raise AnalysisError("Specification curve: no chosen estimator fits the chosen models.")
    return pairs, notes


def _check_columns(table, ptr_column, controls, study, combos) -> None:
    for column in [ptr_column, *controls, *([study] if study else [])]:
        if column not in table.columns:
            raise AnalysisError(f"Specification curve: the data have no column '{column}'.")
    if ptr_column in controls:
        raise AnalysisError(f"'{ptr_column}' is the PTR moderator; it cannot also be a control.")
    clash = sorted(set(controls) & set(RESULT_COLUMNS))
    if clash:
        raise AnalysisError(
            f"A control named '{clash[0]}' would clash with a column of the results; rename it."
        )


def _column_blocks(design) -> dict[str, list[int]]:
    """Model-matrix columns of each moderator (the intercept is column 0)."""
    blocks, position = {}, 1
    for term in design.terms:
        blocks[term.column] = list(range(position, position + len(term.labels)))
        position += len(term.labels)
    return blocks


def _typical_rows(design, ptr_scale: str) -> tuple[np.ndarray, np.ndarray]:
    """Model-matrix rows at PTR = 1 and PTR = 10, other moderators typical.

    Numeric controls sit at their mean over the analysed rows, categorical ones at their
    reference level (all dummies 0), as in ``MetaResult.predict``.
    """
    values = [1.0]
    for term in design.terms[1:]:
        values += [term.mean] if term.kind == "numeric" else [0.0] * len(term.labels)
    forward = np.log if ptr_scale == "log" else (lambda x: x)
    x_from = np.array([1.0, forward(PTR_FROM), *values[1:]])
    x_to = np.array([1.0, forward(PTR_TO), *values[1:]])
    return x_from, x_to


@dataclass(frozen=True, eq=False)
class _SpecificationInputs:
    """What every specification shares: the rows, the full model matrix, the settings."""

    y: np.ndarray
    v: np.ndarray
    X: np.ndarray
    names: tuple[str, ...]
    studies: np.ndarray | None  # integer study codes
    x_from: np.ndarray  # model-matrix row at PTR = 1, other moderators typical
    x_to: np.ndarray  # the same at PTR = 10
    delta_scale: str | None
    test: str
    level: float


def _fit_specification(
    inputs: _SpecificationInputs,
    columns: list[int],
    model: str,
    method: str,
    start,
    rho: float | None = None,
    inferences: Sequence[str] = ("model",),
) -> dict[str, dict]:
    """One fit; its PTR row under each inference (CR2 as ``robust``: clubSandwich's CR2 with
    the working covariance of the fit, clustered by study)."""
    three_level = model == "three-level"
    engine_test = inputs.test if inputs.test == "z" else ("t" if three_level else "knha")
    names = [inputs.names[j] for j in columns]
    X = inputs.X[:, columns]
    try:
        fitted = refit(
            inputs.y,
            inputs.v,
            X,
            method=method,
            test=engine_test,
            level=inputs.level,
            studies=inputs.studies if three_level else None,
            start=start,
            names=names,
            rho=rho if three_level else None,
        )
    except AnalysisError as error:
        return {inference: {"k": len(inputs.y), "error": str(error)} for inference in inferences}
    at_to = transf(np.asarray(inputs.x_to[columns] @ fitted.beta), inputs.delta_scale)
    at_from = transf(np.asarray(inputs.x_from[columns] @ fitted.beta), inputs.delta_scale)
    shared = {
        "k": fitted.k,
        "n_studies": fitted.n_studies if three_level else None,
        "delta": float(at_to - at_from),
        "theta": fitted.theta,
    }
    out = {}
    for inference in inferences:
        if inference == "CR2":
            try:
                ptr = _robust_coefficient(inputs, X, fitted, three_level, rho, names)
            except AnalysisError as error:
                out[inference] = {"k": fitted.k, "error": str(error)}
                continue
        else:
            ptr = {**fitted.coefficient(1), "df": np.nan}  # the df column holds CR2's df
        out[inference] = {
            **shared,
            **ptr,
            "significant": bool(ptr["pval"] < 1.0 - inputs.level),
            "error": None,
        }
    return out


def _caution(row: Mapping[str, object], few_studies: str | None) -> str | None:
    """Why a specification's PTR test cannot be trusted, by the rules of the dashboard's
    flags (``ModelFlags``): fewer than 10 studies, or a CR2 test on fewer than 4 df."""
    reasons = [few_studies] if few_studies else []
    df = row.get("df")
    if df is not None and np.isfinite(df) and df < MIN_RELIABLE_DF:
        reasons.append(f"a robust test on fewer than {MIN_RELIABLE_DF:g} degrees of freedom")
    return "; ".join(reasons) or None


def _robust_coefficient(inputs, X, fitted, three_level: bool, rho, names) -> dict[str, float]:
    """The PTR coefficient (column 1) under CR2 clustered by study."""
    if three_level:
        blocks = marginal_blocks(
            inputs.studies,
            inputs.v,
            study=inputs.studies,
            sigma2_study=float(fitted.theta[0]),
            sigma2_es=float(fitted.theta[1]),
            rho=rho,
        )
    else:
        blocks = marginal_blocks(inputs.studies, inputs.v, sigma2_es=float(fitted.theta[0]))
    robust = robust_from_blocks(
        X, inputs.y, fitted.beta, blocks, names, method="CR2", level=inputs.level
    )
    row = robust.coefficients.iloc[1]
    return {
        column: float(row[column])
        for column in ("estimate", "se", "statistic", "pval", "ci_lb", "ci_ub", "df")
    }


# -- the figure ----------------------------------------------------------------------------
