"""The what-if choices of an analysis, and their round trip through a URL and a JSON file.

Everything a user can choose in the dashboard's sidebar lives in one immutable
``AnalysisSettings``. It serialises to a URL query string (so an instructor can hand a class a
link to one scenario) and to JSON (a settings file the app can load again).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace

from alliance_core.analyses.upload_choices import UploadChoices
from alliance_core.data.control_text import cleaned_json
from alliance_core.errors import AnalysisError

# Model name -> link code. "two-level" is the random-effects model for tables with one effect
# size per study. On nested tables (several effect sizes per study) the two-level choice is either
# "two-level-aggregated" (one effect per study, metafor aggregate.escalc with compound symmetry at
# sampling correlation rho) or "two-level-independent" (every row as if it were its own study,
# which overstates precision and is offered only with a warning).
MODELS = {
    "two-level": "2L",
    "two-level-aggregated": "2L-agg",
    "two-level-independent": "2L-ind",
    "three-level": "3L",
}
TWO_LEVEL_MODELS = ("two-level", "two-level-aggregated", "two-level-independent")
DEFAULT_RHO = 0.6
RHO_RANGE = (0.0, 0.99)  # a sampling correlation of 1 makes a study's covariance singular
TWO_LEVEL_METHODS = ("REML", "ML", "DL", "PM", "HE", "SJ", "EE")
THREE_LEVEL_METHODS = ("REML", "ML")
TESTS = ("z", "t")
# How standard errors, df, p-values and intervals are computed: from the fitted model, or
# cluster-robust (CR2 with Satterthwaite df, clusters = studies; Pustejovsky & Tipton 2022).
INFERENCES = {"model": "model", "CR2": "CR2"}  # name -> link code
MODEL_BASED = "model"
ROBUST = "CR2"
# Settings files before version 2 (and links without rho) knew no CHE working model: their
# three-level model assumed independent sampling errors, i.e. rho = 0.
SETTINGS_VERSION = 3  # 3: an uploaded sheet's mapping, missing codes and level merges
LEGACY_THREE_LEVEL_RHO = 0.0
PTR_SCALES = ("log", "raw")
PTR = "PTR"  # the moderator name the dashboard uses for the Patient-Therapist Ratio
# An interaction is listed among the moderators beside its two main effects as "PTR:column"
# (R's ``a:b``; the sidebar offers PTR x each categorical moderator).
INTERACTION = ":"
# A settings file written by the dashboard is a few hundred bytes; anything near this size is
# not one, and refusing it before parsing keeps a hostile file from costing memory or time.
MAX_SETTINGS_BYTES = 100_000
# Column names and levels longer than this are not from a coding sheet a person typed.
MAX_TEXT_LENGTH = 500


@dataclass(frozen=True)
class AnalysisSettings:
    """One analysis: which data, which model, which moderators, which rows.

    ``test`` is "z" or "t"; "t" means Knapp-Hartung in the two-level model and t tests on
    k - p degrees of freedom in the three-level model (see ``engine_test``). ``moderators``
    may include ``"PTR"``, entered as log(PTR) or PTR according to ``ptr_scale``, and an
    interaction of PTR with a categorical moderator, ``"PTR:alliance_rater"``, listed beside
    both its main effects (R's ``~ PTR * alliance_rater``; see ``ptr_interaction``).
    ``filters`` keep only rows whose value in a column is among the listed levels.
    ``rho`` is the sampling correlation of one study's effect sizes: the CHE working model of
    the three-level fit and the aggregation of the aggregated two-level model (one rho for the
    analysis; unused by the other models). ``inference`` is "model" (the fit's own standard
    errors) or "CR2" (cluster-robust by study, Satterthwaite df).
    """

    dataset: str = "alliance_simulated"
    model: str = "three-level"
    method: str = "REML"
    test: str = "z"
    moderators: tuple[str, ...] = (PTR,)
    reference: Mapping[str, str] = field(default_factory=dict)
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ptr_scale: str = "log"
    rho: float = DEFAULT_RHO
    inference: str = MODEL_BASED
    page: str | None = None

    def __post_init__(self) -> None:
        # Types first: a settings file or a caller may hand over anything JSON can hold, and
        # a list where a name belongs must be a message, not a TypeError from a dict lookup.
        for name in ("dataset", "model", "method", "test", "ptr_scale"):
            _check_text(getattr(self, name), name)
        if self.page is not None:
            _check_text(self.page, "page")
        object.__setattr__(self, "moderators", _text_tuple(self.moderators, "moderators"))
        object.__setattr__(self, "reference", _text_mapping(self.reference))
        object.__setattr__(self, "filters", _filter_mapping(self.filters))
        if self.model not in MODELS:
            raise AnalysisError(f"Unknown model '{self.model}'; choose one of {', '.join(MODELS)}.")
        methods = THREE_LEVEL_METHODS if self.model == "three-level" else TWO_LEVEL_METHODS
        if self.method not in methods:
            raise AnalysisError(
                f"The {self.model} model is not fitted by '{self.method}'; choose one of "
                f"{', '.join(methods)}."
            )
        if self.test not in TESTS:
            raise AnalysisError(f"Unknown test '{self.test}'; choose z or t.")
        if self.inference not in INFERENCES:
            raise AnalysisError(
                f"Unknown inference '{self.inference}'; choose one of {', '.join(INFERENCES)}."
            )
        if self.ptr_scale not in PTR_SCALES:
            raise AnalysisError(f"Unknown PTR scale '{self.ptr_scale}'; choose log or raw.")
        try:
            rho = float(self.rho)
        except (TypeError, ValueError):
            raise AnalysisError(
                f"The sampling correlation rho = '{self.rho}' is not a number."
            ) from None
        if not RHO_RANGE[0] <= rho <= RHO_RANGE[1]:
            raise AnalysisError(
                f"The sampling correlation rho = {rho:g} must lie between {RHO_RANGE[0]:g} and "
                f"{RHO_RANGE[1]:g}."
            )
        object.__setattr__(self, "rho", rho)
        # Normalise containers so that equal settings compare and hash equal (cache keys).
        object.__setattr__(self, "reference", dict(sorted(self.reference.items())))
        object.__setattr__(
            self,
            "filters",
            {column: levels for column, levels in sorted(self.filters.items()) if levels},
        )

    @property
    def is_two_level(self) -> bool:
        """Any two-level model (plain, aggregated or effect sizes treated as independent)."""
        return self.model in TWO_LEVEL_MODELS

    @property
    def uses_rho(self) -> bool:
        """Whether rho enters this model (CHE three-level, or the aggregation)."""
        return self.model in ("three-level", "two-level-aggregated")

    @property
    def che_rho(self) -> float | None:
        """The rho ``fit`` receives: the CHE working correlation of the three-level model
        (None, independent sampling errors, when rho is 0 or the model is two-level)."""
        if self.model != "three-level" or self.rho == 0:
            return None
        return self.rho

    @property
    def robust(self) -> bool:
        return self.inference == ROBUST

    @property
    def engine_test(self) -> str:
        """The test name ``alliance_core.fit`` expects for this model."""
        if self.test == "z":
            return "z"
        return "knha" if self.is_two_level else "t"

    def with_changes(self, **changes) -> AnalysisSettings:
        return replace(self, **changes)

    def cache_key(self) -> str:
        """A stable text key: equal settings give equal keys."""
        return json.dumps(self.to_dict(), sort_keys=True)

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = asdict(self)
        data["moderators"] = list(self.moderators)
        data["filters"] = {column: list(levels) for column, levels in self.filters.items()}
        data["reference"] = dict(self.reference)
        return data

    def to_json(self, upload: UploadChoices | None = None) -> str:
        """The settings file; with ``upload`` also the uploaded sheet's choices (version 3)."""
        data = {"alliance_dashboard_settings": SETTINGS_VERSION, **self.to_dict()}
        if upload is not None:
            data["upload"] = upload.to_dict()
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> AnalysisSettings:
        """Settings from a file written by ``to_json``; AnalysisError when it is not one.

        Every entry is checked for its type (text, a list of texts, a table of texts) and the
        message names the entry; a single text where a list belongs is a list of one
        (``"moderators": "PTR"`` means the moderator PTR).
        """
        if len(text) > MAX_SETTINGS_BYTES:
            raise AnalysisError(
                f"The settings file is larger than {MAX_SETTINGS_BYTES // 1000} KB; a settings "
                "file saved by the dashboard is far smaller, so this is not one."
            )
        try:
            data = json.loads(text)
        except RecursionError as error:
            raise AnalysisError(
                "The settings file is nested too deeply to be a settings file."
            ) from error
        except (ValueError, UnicodeDecodeError) as error:
            raise AnalysisError(f"The settings file is not valid JSON ({error}).") from error
        if not isinstance(data, dict) or "alliance_dashboard_settings" not in data:
            raise AnalysisError("This JSON file is not a settings file saved by the dashboard.")
        data = cleaned_json(data)
        known = {name for name in cls.__dataclass_fields__}
        # "provenance" describes the analysis the file was saved from; it sets nothing.
        # "upload" holds an uploaded sheet's choices (``upload_choices_from_json``).
        extras = {"alliance_dashboard_settings", "provenance", "upload"}
        unknown = sorted(set(data) - known - extras)
        if unknown:
            shown = ", ".join(unknown[:10]) + (", …" if len(unknown) > 10 else "")
            raise AnalysisError(f"The settings file has unknown entries: {shown}.")
        values = {key: value for key, value in data.items() if key in known}
        if _is_legacy_three_level(data):
            # Before version 2 the three-level model ignored rho (independent sampling errors);
            # the file keeps meaning the model it was saved from.
            values["rho"] = LEGACY_THREE_LEVEL_RHO
        return cls(**values)

    # -- URL query string ------------------------------------------------------------------
    def to_query(self) -> dict[str, str | list[str]]:
        """Query parameters; lists become repeated keys (?mod=PTR&mod=design)."""
        query: dict[str, str | list[str]] = {
            "ds": self.dataset,
            "model": MODELS[self.model],
            "est": self.method,
            "test": self.test,
            "ptr": self.ptr_scale,
        }
        if self.moderators:
            query["mod"] = list(self.moderators)
        else:
            query["mod"] = "none"
        if self.reference:
            query["ref"] = [f"{column}:{level}" for column, level in self.reference.items()]
        if self.filters:
            query["keep"] = [
                f"{column}:{level}" for column, levels in self.filters.items() for level in levels
            ]
        if self.uses_rho:
            query["rho"] = f"{self.rho:g}"
        if self.inference != MODEL_BASED:
            query["inf"] = INFERENCES[self.inference]
        if self.page:
            query["page"] = self.page
        return query

    @classmethod
    def from_query(
        cls, query: Mapping[str, object], default: AnalysisSettings | None = None
    ) -> AnalysisSettings:
        """Settings from query parameters (values may be strings or lists of strings).

        Parameters that are absent keep the default's value; a malformed one raises
        AnalysisError naming it, so the dashboard can say which part of a link it ignored.
        """
        base = default or cls()

        def values(key: str) -> list[str]:
            raw = query.get(key)
            if raw is None:
                return []
            return [str(v) for v in raw] if isinstance(raw, list | tuple) else [str(raw)]

        def one(key: str, fallback: str) -> str:
            found = values(key)
            return found[-1] if found else fallback

        model_codes = {code: name for name, code in MODELS.items()}
        model_code = one("model", MODELS[base.model])
        if model_code not in model_codes:
            raise AnalysisError(
                f"Link parameter model={model_code} is not one of {', '.join(MODELS.values())}."
            )
        changes: dict[str, object] = {
            "dataset": one("ds", base.dataset),
            "model": model_codes[model_code],
            "method": one("est", base.method),
            "test": one("test", base.test),
            "ptr_scale": one("ptr", base.ptr_scale),
            "page": one("page", base.page or "") or None,
        }
        if values("inf"):
            codes = {code: name for name, code in INFERENCES.items()}
            code = one("inf", "")
            if code not in codes:
                raise AnalysisError(
                    f"Link parameter inf={code} is not one of {', '.join(INFERENCES.values())}."
                )
            changes["inference"] = codes[code]
        if values("rho"):
            text = one("rho", "")
            try:
                changes["rho"] = float(text)
            except ValueError:
                raise AnalysisError(f"Link parameter rho={text} is not a number.") from None
        mods = values("mod")
        if mods:
            changes["moderators"] = () if mods == ["none"] else tuple(mods)
        if "ref" in query:
            changes["reference"] = dict(_split_pair(item, "ref") for item in values("ref"))
        if "keep" in query:
            filters: dict[str, list[str]] = {}
            for item in values("keep"):
                column, level = _split_pair(item, "keep")
                filters.setdefault(column, []).append(level)
            changes["filters"] = {column: tuple(levels) for column, levels in filters.items()}
        return replace(base, **changes)


def ptr_interaction(column: str) -> str:
    """The moderator name of the interaction of PTR with ``column`` ("PTR:alliance_rater")."""
    return f"{PTR}{INTERACTION}{column}"


def interaction_partner(name: str) -> str | None:
    """The other part of a PTR interaction ("alliance_rater" for "PTR:alliance_rater" or
    "alliance_rater:PTR"); None when ``name`` is not an interaction with PTR."""
    parts = name.split(INTERACTION)
    if len(parts) != 2 or PTR not in parts or parts[0] == parts[1]:
        return None
    other = parts[1] if parts[0] == PTR else parts[0]
    return other or None


def interactions_of(moderators) -> tuple[str, ...]:
    """The partners of PTR among the interactions of a moderator list, in order."""
    return tuple(
        partner for name in moderators if (partner := interaction_partner(name)) is not None
    )


def upload_choices_from_json(text: str | bytes) -> UploadChoices | None:
    """The uploaded sheet's choices of a settings file (version 3), None when it has none.

    Call after ``AnalysisSettings.from_json`` accepted the file (it checks size and JSON)."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("upload") is None:
        return None
    return UploadChoices.from_dict(data["upload"])


def _is_legacy_three_level(data: Mapping) -> bool:
    """A settings file from before version 2 for the three-level model."""
    version = data.get("alliance_dashboard_settings")
    old = not isinstance(version, int) or isinstance(version, bool) or version < 2
    return old and data.get("model", AnalysisSettings.model) == "three-level"


def legacy_link_rho(query: Mapping[str, object], model: str) -> bool:
    """A link that names the three-level model without rho: made before the CHE model existed.

    Links the dashboard wrote always name the model, so ``model=3L`` without ``rho`` means
    today's model with independent sampling errors (rho = 0), not the new default; the dashboard
    says so. A link that does not name the model at all (typed by hand, e.g. ``?ds=crede2010``)
    asks for nothing about it and opens the defaults.
    """
    named = query.get("model") not in (None, [], ())
    return named and model == "three-level" and query.get("rho") in (None, [], ())


def _split_pair(item: str, key: str) -> tuple[str, str]:
    column, sep, level = item.partition(":")
    if not sep or not column:
        raise AnalysisError(f"Link parameter {key}={item} should read column:level.")
    return column, level


def _check_text(value: object, name: str) -> str:
    """``value`` if it is a short text; AnalysisError naming the entry otherwise."""
    if not isinstance(value, str):
        raise AnalysisError(f"The setting '{name}' should be a text, not {_json_kind(value)}.")
    if len(value) > MAX_TEXT_LENGTH:
        raise AnalysisError(f"The setting '{name}' is longer than {MAX_TEXT_LENGTH} characters.")
    return value


def _text_tuple(value: object, name: str) -> tuple[str, ...]:
    """A text or a list of texts as a tuple; one text is a list of one, never its letters."""
    if isinstance(value, str):
        return (_check_text(value, name),)
    if not isinstance(value, list | tuple):
        raise AnalysisError(
            f"The setting '{name}' should be a list of texts, not {_json_kind(value)}."
        )
    return tuple(_check_text(item, name) for item in value)


def _text_mapping(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise AnalysisError(
            f"The setting 'reference' should be a table of column: level, not {_json_kind(value)}."
        )
    return {
        _check_text(column, "reference"): _check_text(level, f"reference of {column}")
        for column, level in value.items()
    }


def _filter_mapping(value: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise AnalysisError(
            f"The setting 'filters' should be a table of column: [levels], not {_json_kind(value)}."
        )
    return {
        _check_text(column, "filters"): _text_tuple(levels, f"filters of {column}")
        for column, levels in value.items()
    }


def _json_kind(value: object) -> str:
    """What a JSON value is, in words (for messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a text"
    if isinstance(value, Mapping):
        return "a table of entries"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__
