"""The sidebar's what-if choices as plain data, without Streamlit.

Choices arrive from three places: the sidebar's widgets, a shared link (URL query string) and a
settings file. Any of them can ask for something the current table cannot give (a three-level
model without a study column, PTR without therapist counts, a reference level the filter
removed). ``reconcile`` turns such a request into valid ``AnalysisSettings`` and says, in a
sentence each, what it had to change, so that a link or a file never fails silently.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd

from alliance_core.analyses.presets import apply_preset_link, matching_preset
from alliance_core.analyses.references import reference_order, reference_refusal
from alliance_core.analyses.run import apply_filters, available_moderators
from alliance_core.analyses.settings import (
    DEFAULT_RHO,
    INFERENCES,
    LEGACY_THREE_LEVEL_RHO,
    MODEL_BASED,
    PTR,
    PTR_SCALES,
    RHO_RANGE,
    ROBUST,
    TESTS,
    THREE_LEVEL_METHODS,
    TWO_LEVEL_METHODS,
    AnalysisSettings,
    interaction_partner,
    legacy_link_rho,
    ptr_interaction,
)
from alliance_core.data.datasets import DEFAULT_DATASET, DatasetInfo, list_datasets
from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads import UploadedTable, read_table, suggest_roles
from alliance_core.errors import AnalysisError
from alliance_core.model.design import is_categorical, level_order
from alliance_core.model.nesting import AGGREGATED, INDEPENDENT, is_nested
from pages._ui.view_link import VIEW_PARAMETERS, shortened

SOURCE_BUNDLED = "bundled"
SOURCE_UPLOAD = "upload"
# AnalysisSettings.dataset of an uploaded table; links never carry it (the file is not in them).
UPLOAD_DATASET = "upload"
# Link parameters AnalysisSettings.to_query writes, in the order they are applied: the model
# before the estimator, because which estimators exist depends on the model.
# A preset comes first: it sets moderators that an explicit mod= in the same link overrides.
LINK_PARAMETERS = (
    "preset",
    "model",
    "rho",
    "inf",
    "est",
    "test",
    "ptr",
    "mod",
    "ref",
    "keep",
    "page",
)
LEGACY_RHO_NOTICE = (
    "This link was made before the dashboard modelled correlated sampling errors (it sets no "
    "ρ), so it opens the model it showed then: the three-level model with independent sampling "
    "errors (ρ = 0). New analyses start at ρ = {default:g}, the usual working assumption; set "
    "ρ in the sidebar to use it."
)
DATASET_TITLE_CHARS = 26  # what the sidebar's dataset box shows without cutting


def display_title(title: str, limit: int = DATASET_TITLE_CHARS) -> str:
    """A title short enough for the sidebar's dataset box: cut at a word boundary with an
    ellipsis (the sidebar shows the whole title under the box)."""
    if len(title) <= limit:
        return title
    words: list[str] = []
    for word in title.split(" "):
        if len(" ".join([*words, word])) + 1 > limit:
            break
        words.append(word)
    return " ".join(words).rstrip(" ,;:\u2013-") + "\u2026"


def methods_for(model: str) -> tuple[str, ...]:
    return THREE_LEVEL_METHODS if model == "three-level" else TWO_LEVEL_METHODS


def mapping_key(mapping: ColumnMapping) -> str:
    """A short stable text for a mapping (part of cache keys)."""
    text = json.dumps(asdict(mapping), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DataChoices:
    """What the active table offers the sidebar.

    ``categorical`` maps each text (or yes/no) column among the mapped moderators to its levels in
    the whole table, in the order the model uses (its first level is the default reference).
    """

    dataset: str
    has_study: bool
    has_therapists: bool
    moderators: tuple[str, ...]
    categorical: Mapping[str, tuple[str, ...]]
    nested: bool = False  # some study has several effect sizes
    study: str | None = None  # the study column (reference levels count its studies)

    @property
    def models(self) -> tuple[str, ...]:
        """The models the sidebar offers: on nested data two kinds of two-level model. Without
        a study of several effect sizes the three-level model cannot be fitted (its two
        variances cannot be told apart), so it is not offered."""
        if self.nested:
            return ("three-level", AGGREGATED, INDEPENDENT)
        return ("two-level",)

    @property
    def filter_columns(self) -> tuple[str, ...]:
        """Columns a filter can keep levels of: categorical moderators with two or more levels."""
        return tuple(c for c, levels in self.categorical.items() if len(levels) >= 2)


def offered_choices(dataset: str, mapping: ColumnMapping, table: pd.DataFrame) -> DataChoices:
    categorical = {
        column: tuple(level_order(table[column].dropna().unique()))
        for column in mapping.moderators
        if column in table.columns and is_categorical(table[column])
    }
    return DataChoices(
        dataset=dataset,
        has_study=mapping.study is not None,
        has_therapists=mapping.has_therapists,
        moderators=tuple(available_moderators(table, mapping)),
        categorical=categorical,
        nested=is_nested(table, mapping.study),
        study=mapping.study,
    )


def default_settings(dataset: str, mapping: ColumnMapping) -> AnalysisSettings:
    """Where a dataset starts: three-level when it has studies, PTR when it has therapist counts."""
    return AnalysisSettings(
        dataset=dataset,
        model="three-level" if mapping.study else "two-level",
        method="REML",
        test="z",
        moderators=(PTR,) if mapping.has_therapists else (),
    )


@dataclass(frozen=True)
class Draft:
    """Choices as asked for, possibly inconsistent (e.g. a filter column with no level picked)."""

    dataset: str
    model: str = "three-level"
    method: str = "REML"
    test: str = "z"
    moderators: tuple[str, ...] = ()
    reference: Mapping[str, str] = field(default_factory=dict)
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ptr_scale: str = "log"
    rho: float = DEFAULT_RHO
    inference: str = MODEL_BASED
    page: str | None = None

    @classmethod
    def from_settings(cls, settings: AnalysisSettings) -> Draft:
        return cls(
            dataset=settings.dataset,
            model=settings.model,
            method=settings.method,
            test=settings.test,
            moderators=tuple(settings.moderators),
            reference=dict(settings.reference),
            filters={c: tuple(v) for c, v in settings.filters.items()},
            ptr_scale=settings.ptr_scale,
            rho=settings.rho,
            inference=settings.inference,
            page=settings.page,
        )


@dataclass(frozen=True)
class Reconciled:
    """Valid settings for the table, the filter columns picked (also those with no level yet),
    and what had to change to get there."""

    settings: AnalysisSettings
    filter_columns: tuple[str, ...]
    filter_levels: Mapping[str, tuple[str, ...]]
    notes: tuple[str, ...]
    study: str | None = None  # the study column (see DataChoices)
    refusals: tuple[str, ...] = ()  # choices refused with a reason, shown even for widgets

    def reference_levels(self, table: pd.DataFrame, column: str) -> tuple[str, ...]:
        """Levels of a categorical moderator left after the filter, the default reference (the
        level with the most studies) first."""
        return reference_order(apply_filters(table, self.settings.filters), column, self.study)


def reconcile(draft: Draft, choices: DataChoices, table: pd.DataFrame) -> Reconciled:
    """Valid ``AnalysisSettings`` for ``table`` that keep as much of ``draft`` as it allows."""
    notes: list[str] = []

    model = draft.model
    if model == "three-level" and not choices.has_study:
        notes.append(
            "The three-level model needs a study column (several effect sizes per study); this "
            "table has none, so the two-level model is used."
        )
        model = "two-level"
    elif model == "three-level" and not choices.nested:
        notes.append(
            "Every study in this table has one effect size, so the three-level model cannot tell "
            "variation between studies from variation within them; the two-level model is used."
        )
        model = "two-level"
    elif model == "two-level" and choices.nested:
        notes.append(
            "Two-level (model=2L) on this table, where studies have several effect sizes, means "
            "one aggregated effect per study (sampling correlation ρ, adjustable in the "
            "sidebar). To treat every effect size as independent, choose that option "
            "explicitly (not recommended)."
        )
        model = AGGREGATED
    elif model in (AGGREGATED, INDEPENDENT) and not choices.nested:
        notes.append(
            "Every study in this table has one effect size, so there is nothing to aggregate; "
            "the plain two-level model is used."
        )
        model = "two-level"
    rho = draft.rho
    try:
        rho = float(rho)
    except (TypeError, ValueError):
        rho = float("nan")
    if not RHO_RANGE[0] <= rho <= RHO_RANGE[1]:
        notes.append(
            f"The sampling correlation ρ must lie between {RHO_RANGE[0]:g} and "
            f"{RHO_RANGE[1]:g}; {DEFAULT_RHO:g} is used."
        )
        rho = DEFAULT_RHO
    method = draft.method
    if method not in methods_for(model):
        notes.append(
            f"The {model} model is not fitted by '{method}' here; REML is used "
            f"(available: {', '.join(methods_for(model))})."
        )
        method = "REML"
    inference = draft.inference if draft.inference in INFERENCES else MODEL_BASED
    if inference == ROBUST and not choices.has_study:
        notes.append(
            "Cluster-robust (CR2) inference needs a study column to group effect sizes by study; "
            "this table has none, so model-based inference is used."
        )
        inference = MODEL_BASED
    test = draft.test if draft.test in TESTS else "z"
    ptr_scale = draft.ptr_scale if draft.ptr_scale in PTR_SCALES else "log"

    moderators: list[str] = []
    asked_interactions: list[str] = []
    for moderator in draft.moderators:
        if moderator in moderators:
            continue
        if moderator in choices.moderators:
            moderators.append(moderator)
        elif interaction_partner(moderator) is not None:
            asked_interactions.append(interaction_partner(moderator))
        elif moderator == PTR:
            notes.append(
                "PTR needs the number of therapists per study, which this table does not have; "
                "it was left out of the moderators."
            )
        else:
            notes.append(f"'{moderator}' is not a moderator column of this table; it was left out.")
    interactions, interaction_notes = reconcile_interactions(
        asked_interactions, moderators, choices
    )
    notes += interaction_notes
    refusals: list[str] = list(interaction_notes)
    moderators += [ptr_interaction(column) for column in interactions]

    filter_columns: list[str] = []
    filter_levels: dict[str, tuple[str, ...]] = {}
    for column, levels in draft.filters.items():
        if column not in choices.filter_columns:
            notes.append(
                f"The filter on '{column}' was dropped: this table has no categorical column of "
                "that name with two or more levels."
            )
            continue
        known = choices.categorical[column]
        kept = tuple(dict.fromkeys(str(level) for level in levels if str(level) in known))
        unknown = [str(level) for level in levels if str(level) not in known]
        if unknown:
            notes.append(
                f"The filter on '{column}' ignores level(s) {', '.join(unknown)}, which the table "
                f"does not have (levels: {', '.join(known)})."
            )
        filter_columns.append(column)
        filter_levels[column] = kept
    filters = {column: levels for column, levels in filter_levels.items() if levels}

    rows = apply_filters(table, filters)
    reference: dict[str, str] = {}
    for column, level in draft.reference.items():
        if column not in moderators or column not in choices.categorical:
            continue  # a reference only matters for a categorical moderator in the model
        present = reference_order(rows, column, choices.study)
        refusal = reference_refusal(rows, column, choices.study, str(level))
        if str(level) not in present:
            notes.append(
                f"'{level}' is not a level of '{column}' in the analysed rows; the reference "
                f"level is {present[0] if present else 'the first level'} instead."
            )
        elif refusal is not None:
            notes.append(refusal + f" The reference level is '{present[0]}'.")
            refusals.append(notes[-1])
        elif present and str(level) != present[0]:
            reference[column] = str(level)  # the default reference is left implicit

    settings = AnalysisSettings(
        dataset=choices.dataset,
        model=model,
        method=method,
        test=test,
        moderators=tuple(moderators),
        reference=reference,
        filters=filters,
        ptr_scale=ptr_scale,
        rho=rho,
        inference=inference,
        page=draft.page,
    )
    return Reconciled(
        settings,
        tuple(filter_columns),
        filter_levels,
        tuple(notes),
        study=choices.study,
        refusals=tuple(refusals),
    )


def interaction_choices(moderators: Sequence[str], choices: DataChoices) -> tuple[str, ...]:
    """The categorical moderators PTR may interact with: those chosen beside PTR."""
    if PTR not in moderators:
        return ()
    return tuple(m for m in moderators if m in choices.categorical and m != PTR)


def reconcile_interactions(
    asked: Sequence[str], moderators: Sequence[str], choices: DataChoices
) -> tuple[tuple[str, ...], list[str]]:
    """The PTR interactions (partner columns) kept of those ``asked``, and a sentence for each
    left out: a partner this table does not have or that is not categorical, or an interaction
    whose main effects are not both among the ``moderators`` (removing a main effect removes
    its interaction, and says so)."""
    offered = interaction_choices(moderators, choices)
    kept: list[str] = []
    notes: list[str] = []
    for column in dict.fromkeys(asked):
        name = f"PTR × {column}"
        if column not in choices.moderators:
            notes.append(
                f"The interaction {name} was left out: '{column}' is not a moderator column of "
                "this table."
            )
        elif column not in choices.categorical:
            notes.append(
                f"The interaction {name} was left out: PTR interacts here only with a "
                f"categorical moderator, and '{column}' is numeric."
            )
        elif column in offered:
            kept.append(column)
        else:
            missing = " and ".join(f"'{part}'" for part in (PTR, column) if part not in moderators)
            notes.append(
                f"The interaction {name} was removed because {missing} "
                f"{'is' if ' and ' not in missing else 'are'} not among the moderators: "
                "an interaction is read beside both its main effects."
            )
    return tuple(kept), notes


# -- links -----------------------------------------------------------------------------------
def link_query(settings: AnalysisSettings) -> dict[str, list[str]]:
    """The query parameters of a link to this view, every value as a list (repeated keys).

    An uploaded table cannot travel in a link, so a link made while analysing one names no
    dataset: it opens the same choices on the default dataset.
    """
    query = settings.to_query()
    if settings.dataset == UPLOAD_DATASET:
        query.pop("ds", None)
    preset = matching_preset(settings)
    if preset is not None:
        query = {"preset": preset.key, **query}
    return {
        key: list(value) if isinstance(value, list) else [value] for key, value in query.items()
    }


def settings_from_link(
    query: Mapping[str, Sequence[str]],
    defaults_for: Callable[[str], AnalysisSettings],
    datasets: Sequence[DatasetInfo] | None = None,
) -> tuple[AnalysisSettings, list[str]]:
    """Settings from a link's query parameters, and a sentence for every parameter not used.

    A malformed parameter is skipped (its default stays) rather than discarding the whole link;
    ``defaults_for(dataset)`` gives the starting point of the dataset the link names.
    """
    names = [info.name for info in (datasets or list_datasets())]
    problems: list[str] = []
    unknown = sorted(set(query) - set(LINK_PARAMETERS) - set(VIEW_PARAMETERS) - {"ds"})
    for key in unknown:
        problems.append(
            f"Link parameter '{shortened(key)}' is not one the dashboard knows; it was ignored."
        )
    dataset = (list(query.get("ds") or []) or [DEFAULT_DATASET])[-1]
    if dataset not in names:
        problems.append(
            f"Link parameter ds={shortened(dataset)}: no bundled dataset has this name (bundled: "
            f"{', '.join(names)}); the default dataset is shown."
        )
        dataset = DEFAULT_DATASET
    settings = defaults_for(dataset)
    for key in LINK_PARAMETERS:
        values = [str(v) for v in query.get(key) or []]
        if not values:
            continue
        if key == "preset":
            settings, problem = apply_preset_link(settings, values[-1])
            if problem:
                problems.append(problem)
            continue
        try:
            settings = AnalysisSettings.from_query({key: values}, default=settings)
        except AnalysisError as error:
            message = str(error)
            if not message.startswith("Link parameter"):
                message = f"Link parameter {key}={shortened(','.join(values))}: {message}"
            problems.append(f"{message} The default is used instead.")
    if query and legacy_link_rho(query, settings.model):
        settings = settings.with_changes(rho=LEGACY_THREE_LEVEL_RHO)
        problems.append(LEGACY_RHO_NOTICE.format(default=DEFAULT_RHO))
    return settings, problems


# -- a page checking a link's view choice -----------------------------------------------------
def check_view_choice(name: str, wanted: str | None, offered: Sequence[str]) -> list[str]:
    """A sentence when a link's ``name`` parameter asks for a choice this data does not offer."""
    if wanted is None or wanted in offered:
        return []
    return [
        f"Link parameter {name}={wanted}: not available for this data (available: "
        f"{', '.join(offered)}); the default is used instead."
    ]


# -- uploads ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class UploadRecord:
    """An uploaded file exactly as received; it is never edited (exclusions are a view)."""

    name: str
    content: bytes = field(repr=False)
    sha: str

    @classmethod
    def from_bytes(cls, content: bytes, name: str) -> UploadRecord:
        content = bytes(content)
        return cls(name=name, content=content, sha=hashlib.sha256(content).hexdigest())


def accept_upload(
    content: bytes,
    file_name: str,
    read: Callable[[str, str, bytes], UploadedTable] | None = None,
) -> tuple[UploadRecord, UploadedTable, ColumnMapping]:
    """A received file: its record, the table read from it, and the suggested column roles.

    ``read(sha, file_name, content)`` reads the table (the dashboard passes its cached reader);
    AnalysisError, with a message for the user, when the file is not a readable table.
    """
    record = UploadRecord.from_bytes(content, file_name)
    if read is None:
        uploaded = read_table(record.content, record.name)
    else:
        uploaded = read(record.sha, record.name, record.content)
    return record, uploaded, suggest_roles(uploaded.frame).mapping
