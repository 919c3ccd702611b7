"""Where a downloaded file comes from: the data, every setting, the engine and the date.

A :class:`Provenance` is built once from an analysis and rendered into every file a user takes
away, so that a CSV or a figure found on a desktop a month later can be traced to the exact
analysis: leading ``# key: value`` comment lines in CSV files (``pandas.read_csv(...,
comment="#")`` and R's ``read.csv(..., comment.char = "#")`` skip them), a ``provenance``
object in JSON, a caption and ``layout.meta`` in figures.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata

import plotly.graph_objects as go

from alliance_core.analyses.run import AnalysisRun
from alliance_core.analyses.settings import PTR, AnalysisSettings
from alliance_core.data import datasets
from alliance_core.data.mapping import ColumnMapping
from alliance_core.model.aggregation import COUNT_COLUMN
from alliance_core.model.nesting import AGGREGATED, INDEPENDENT, model_name
from alliance_core.wording.figure_text import plain_figure

# A spreadsheet reads a cell that starts with one of these as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@")
# A cell starts after a line start or a separator; any run of quotes and spaces may come
# before the trigger (``a,""=HYPERLINK(...)`` is read as a cell "=HYPERLINK(...)").
_CELL_START = re.compile(r'(^|[,;\t])([\s"\']*)(?=[=+\-@])')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def engine_version() -> str:
    """The installed alliance_core version (package metadata), or "unknown" when not installed."""
    try:
        return metadata.version("alliance_core")
    except metadata.PackageNotFoundError:
        return "unknown"


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@lru_cache(maxsize=32)
def bundled_sha256(name: str) -> str:
    """SHA-256 of a bundled dataset's file as shipped in data/."""
    info = datasets.dataset_info(name)
    return sha256_of((datasets.DATA_DIR / info.filename).read_bytes())


def one_line(text: object) -> str:
    """User text as one line: control characters (newlines, tabs) become single spaces."""
    return _CONTROL.sub(" ", str(text)).strip()


def neutralise_cells(text: str) -> str:
    """Prefix a single quote to every spreadsheet cell in ``text`` that would start a formula.

    CSV comment lines are still split into cells by a spreadsheet, so a file name such as
    ``a,=HYPERLINK(...)`` would otherwise become a live formula in the second cell.
    """
    return _CELL_START.sub(lambda m: f"{m.group(1)}{m.group(2)}'", text)


def describe_test(model: str, test: str) -> str:
    """The model-based test; ``model`` is a settings model name (any two-level variant)."""
    if test == "z":
        return "z tests (variance components treated as known)"
    if model != "three-level":
        return "Knapp–Hartung adjustment (t and F tests on k − p df)"
    return "t and F tests on k − p df"


def fitted_structure(run: AnalysisRun) -> str:
    """The model the run fitted: "three-level", "two-level", or on nested data the aggregated
    or the independent two-level model (nesting.AGGREGATED / INDEPENDENT).

    A two-level fit whose rows carry the aggregation's count column was fitted to one
    aggregated effect per study (a plain "two-level" choice on nested data means that).
    """
    if run.result.is_three_level:
        return "three-level"
    if COUNT_COLUMN in run.data.columns and run.settings.model in (AGGREGATED, "two-level"):
        return AGGREGATED
    if run.settings.model == INDEPENDENT:
        return INDEPENDENT
    return "two-level"


def fitted_rho(run: AnalysisRun) -> float | None:
    """The within-study sampling correlation of the fitted model: of the CHE working model
    (``res.rho``) or of the aggregation; None when sampling errors are independent."""
    structure = fitted_structure(run)
    if structure == AGGREGATED:
        return float(run.data.attrs.get("rho", run.settings.rho))
    if structure == "three-level":
        return run.result.rho
    return None


def describe_model(run: AnalysisRun) -> str:
    """The model in words (``nesting.model_name``, rho when the model has one), then after a
    semicolon the metafor calls that fit it."""
    structure = fitted_structure(run)
    rho = fitted_rho(run)
    name = model_name(structure, rho)
    kind = "equal-effects" if run.settings.method == "EE" else "random-effects"
    if structure == "three-level" and rho is not None:
        return (
            f"{name}, correlated-and-hierarchical-effects (CHE) working model with sampling "
            f"correlation ρ = {rho:g} within a study; metafor vcalc and rma.mv, "
            "random = ~ 1 | study/es"
        )
    if structure == "three-level":
        return f"{name}; metafor rma.mv, random = ~ 1 | study/es"
    if structure == AGGREGATED:
        return f"{name}; metafor aggregate.escalc (struct CS) and rma.uni, {kind}"
    return f"{name}; metafor rma.uni, {kind}"


def describe_inference(robust) -> str:
    """Model-based, or cluster-robust with the method, clusters and reference."""
    if robust is None:
        return "model-based"
    if robust.method == "CR2":
        return (
            f"cluster-robust CR2 by {robust.cluster or 'cluster'} ({robust.n_clusters} "
            "clusters), Satterthwaite df, HTZ tests (clubSandwich; metafor robust)"
        )
    return (
        f"cluster-robust {robust.method} by {robust.cluster or 'cluster'} "
        f"({robust.n_clusters} clusters), df = clusters − coefficients (metafor robust)"
    )


def describe_effect_size(mapping: ColumnMapping) -> str:
    if mapping.uses_correlations:
        return f"Fisher's z of the correlation '{mapping.r}' with n = '{mapping.n}'"
    return f"'{mapping.yi}' with sampling variance '{mapping.vi}', as given"


def describe_moderators(run: AnalysisRun) -> tuple[str, ...]:
    """Each moderator as entered, categorical ones with their reference level."""
    out = []
    for term in run.result.design.terms:
        if term.kind == "categorical":
            out.append(f"{term.column} (reference level: {term.reference})")
        elif term.column == "log_PTR":
            out.append("log PTR (natural log of patients per therapist)")
        elif term.column == PTR:
            out.append("PTR (patients per therapist)")
        else:
            out.append(term.column)
    return tuple(out)


def describe_filter(run: AnalysisRun) -> str:
    if not run.settings.filters:
        return "none (all rows)"
    return "; ".join(
        f"{column} in {{{', '.join(levels)}}}" for column, levels in run.settings.filters.items()
    )


@dataclass(frozen=True)
class Provenance:
    """What an analysis was computed from and with (every field is plain text)."""

    dataset: str  # bundled dataset name, or the upload's file name
    dataset_title: str
    source: str  # "bundled dataset" or "uploaded file"
    sha256: str  # of the dataset file as bundled, or of the uploaded bytes
    simulated: bool
    effect_size: str
    model: str
    estimator: str
    test: str
    moderators: tuple[str, ...]
    filter: str
    ptr_scale: str
    rows_analysed: int
    engine: str
    created_utc: str
    link: str | None = None
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    inference: str = "model-based"

    @classmethod
    def of(
        cls,
        run: AnalysisRun,
        mapping: ColumnMapping,
        *,
        dataset: str,
        content: bytes | None = None,
        sha256: str | None = None,
        title: str | None = None,
        uploaded: bool = False,
        simulated: bool = False,
        link: str | None = None,
        now: datetime | None = None,
        robust=None,
    ) -> Provenance:
        """From a fitted analysis; the data's hash from ``sha256`` or from ``content``.

        ``robust``: the cluster-robust inference (a ``RobustResult``) shown with the model.
        """
        if sha256 is None:
            sha256 = sha256_of(content) if content is not None else "unknown"
        settings = run.settings
        ptr_in_model = PTR in settings.moderators
        when = (now or datetime.now(UTC)).astimezone(UTC)
        return cls(
            dataset=one_line(dataset),
            dataset_title=one_line(title or dataset),
            source="uploaded file" if uploaded else "bundled dataset",
            sha256=sha256,
            simulated=simulated,
            effect_size=one_line(describe_effect_size(mapping)),
            model=one_line(describe_model(run)),
            estimator=settings.method,
            # Under CR2 the model's own test is not what is reported: say so, so no surface
            # reads as if model-based tests were used.
            test=(
                "cluster-robust t and HTZ tests (the model-based test setting is not used)"
                if robust is not None and getattr(robust, "method", None) == "CR2"
                else describe_test(fitted_structure(run), settings.test)
            ),
            moderators=tuple(one_line(m) for m in describe_moderators(run)),
            filter=one_line(describe_filter(run)),
            ptr_scale=(
                ("log" if settings.ptr_scale == "log" else "raw")
                if ptr_in_model
                else "not in the model"
            ),
            rows_analysed=run.result.k,
            engine=f"alliance_core {engine_version()}",
            created_utc=when.strftime("%Y-%m-%d %H:%M:%S UTC"),
            link=link,
            inference=one_line(describe_inference(robust)),
        )

    # -- renderers ------------------------------------------------------------------------
    def items(self) -> list[tuple[str, str]]:
        """(key, value) pairs in reading order, every value one line of text."""
        pairs = [
            (
                "dataset",
                self.dataset + (" (SIMULATED data, not real studies)" if self.simulated else ""),
            ),
            ("dataset title", self.dataset_title),
            ("source", self.source),
            ("sha256", self.sha256),
            ("effect size", self.effect_size),
            ("model", self.model),
            ("estimator", self.estimator),
            ("test", self.test),
            ("inference", self.inference),
            ("moderators", "; ".join(self.moderators) or "none"),
            ("filter", self.filter),
            ("PTR scale", self.ptr_scale),
            ("rows analysed", str(self.rows_analysed)),
            ("engine", self.engine),
            ("created", self.created_utc),
        ]
        if self.link:
            pairs.append(("link", self.link))
        pairs.extend(self.extra)
        return [(key, one_line(value)) for key, value in pairs]

    def as_dict(self) -> dict[str, str]:
        """For JSON files: the same pairs as a mapping."""
        return dict(self.items())

    def csv_comment_lines(self) -> str:
        """Leading ``# key: value`` lines for a CSV file, neutralised against formula injection."""
        lines = [f"# {key}: {_quote_formula(value)}" for key, value in self.items()]
        return "".join(neutralise_cells(line) + "\n" for line in lines)

    def caption(self) -> str:
        """One short paragraph for a figure caption."""
        sim = "SIMULATED data. " if self.simulated else ""
        mods = ", ".join(self.moderators) or "no moderators"
        return (
            f"{sim}Data: {self.dataset} (sha256 {self.sha256[:12]}…, {self.rows_analysed} rows). "
            f"Model: {self.model.split('; ')[0]}, {self.estimator}, {self.test.split(' (')[0]}; "
            f"moderators: {mods}; filter: {self.filter}. "
            + ("" if self.inference == "model-based" else f"Inference: {self.inference}. ")
            + f"{self.engine}, {self.created_utc}."
        )

    def on_figure(self, fig: go.Figure) -> go.Figure:
        """A copy of ``fig`` with the provenance in ``layout.meta`` and as a caption below it."""
        out = go.Figure(fig)
        meta = out.layout.meta
        merged = dict(meta) if isinstance(meta, dict) else {}
        merged["provenance"] = self.as_dict()
        bottom = (out.layout.margin.b or 80) + 60
        out.update_layout(meta=merged, margin={"b": bottom})
        out.add_annotation(
            text=_wrap(self.caption(), 140),
            xref="paper",
            yref="paper",
            x=0,
            y=0,
            yshift=-bottom + 8,
            xanchor="left",
            yanchor="bottom",
            align="left",
            showarrow=False,
            font={"size": 9, "color": "#555555"},
            name="provenance",
        )
        # The provenance quotes user text (file, column and level names): in ``meta`` Plotly
        # would insert it unescaped wherever a text holds ``%{meta...}``.
        return plain_figure(out)


def _quote_formula(value: str) -> str:
    """A value (e.g. a file name) that starts like a formula gets a leading single quote."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def _wrap(text: str, width: int) -> str:
    """Plotly annotations do not wrap; break at spaces with <br> (the text is escaped first)."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    lines, line = [], ""
    for word in escaped.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "<br>".join(lines)


def with_comment_lines(csv_text: str, provenance: Provenance | None) -> bytes:
    """CSV text preceded by the provenance comment lines, as UTF-8 bytes."""
    head = provenance.csv_comment_lines() if provenance is not None else ""
    return (head + csv_text).encode("utf-8")


def settings_json(settings: AnalysisSettings, provenance: Provenance | None) -> str:
    """The settings file with a ``provenance`` entry (``AnalysisSettings.from_json`` skips it)."""
    data = json.loads(settings.to_json())
    if provenance is not None:
        data["provenance"] = provenance.as_dict()
    return json.dumps(data, indent=2, ensure_ascii=False)
