"""What a link asks a page to show of the model: the view parameters, without Streamlit.

View parameters (forest sort, bubble colour, what-if profiles, the Sensitivity tab, the
selection model's cuts, the Moderators page's marginal means, location-scale section and wild
bootstrap request, the projector view, the Simulator's and the lesson's parameters) never change
a fit or its cache key. ``view_from_link`` reads them from a query string and names every one it
cannot use; a page checks the rest against its data (``state.check_view_choice``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alliance_core.data.control_text import cleaned_json
from alliance_core.errors import AnalysisError
from alliance_core.teaching.lesson import LINK_PARAMETERS as LESSON_PARAMETERS
from alliance_core.teaching.simulator_view import LINK_PARAMETERS as SIMULATOR_PARAMETERS

# Link parameters of what a page shows of the same model (not part of AnalysisSettings, so
# they never change a fit or its cache key): forest sort order, bubble colour, what-if profiles,
# the open tab of the Sensitivity page, the selection model's cuts, the Moderators page's marginal
# means moderator, its location-scale section and its wild bootstrap request, the projector view,
# the Simulator's preset, seed and sliders, the lesson and its step.
VIEW_PARAMETERS = (
    "sort",
    "colour",
    "profile",
    "tab",
    "cuts",
    "means",
    "ls",
    "cwb",
    "view",
    *SIMULATOR_PARAMETERS,
    *LESSON_PARAMETERS,
)
FOREST_SORT_NAMES = ("effect", "precision", "year", "ptr", "label", "data")
NO_COLOUR = "none"
SCALE_ON, SCALE_OFF = "on", "off"  # ls=: the Moderators page's location-scale section
MAX_LINK_PROFILES = 4


def shortened(text: str, limit: int = 80) -> str:
    """A link value as quoted in a notice: a crafted link can be kilobytes long."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class ViewRequest:
    """What a link asks a page to show of the model. ``None`` means the link does not say;
    ``sort`` is one of FOREST_SORT_NAMES ("data" = data order), ``colour`` a column name or
    NO_COLOUR, ``profiles`` a tuple of {"name": str, "values": {column: level or number}},
    ``tab`` the name of a Sensitivity tab, ``cuts`` the selection model's cut choice,
    ``means`` the moderator of the marginal means, ``cwb`` the wild bootstrap test asked for
    (all checked by the page); ``scale`` whether the location-scale section is open (``ls=on``)."""

    sort: str | None = None
    colour: str | None = None
    profiles: tuple[dict, ...] | None = None
    tab: str | None = None
    cuts: str | None = None
    means: str | None = None
    scale: bool | None = None
    cwb: str | None = None


def encode_profile(profile: Mapping) -> str:
    """One profile as compact JSON (names and levels may hold any character)."""
    values = dict(profile.get("values") or {})
    return json.dumps(
        {"name": str(profile.get("name") or ""), "values": values},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def view_query(
    sort: str | None = None,
    colour: str | None = None,
    profiles: Sequence[Mapping] | None = None,
    tab: str | None = None,
    cuts: str | None = None,
    means: str | None = None,
    scale: bool | None = None,
    cwb: str | None = None,
) -> dict[str, list[str]]:
    """Query parameters of a view; a parameter left as ``None`` is not written."""
    query: dict[str, list[str]] = {}
    if sort is not None:
        query["sort"] = [sort]
    if colour is not None:
        query["colour"] = [colour]
    if profiles is not None:
        query["profile"] = [encode_profile(p) for p in profiles]
    if tab is not None:
        query["tab"] = [tab]
    if cuts is not None:
        query["cuts"] = [cuts]
    if means is not None:
        query["means"] = [means]
    if scale:
        query["ls"] = [SCALE_ON]
    if cwb is not None:
        query["cwb"] = [cwb]
    return query


def _decode_profile(text: str) -> dict:
    try:
        raw = cleaned_json(json.loads(text))
    except ValueError as error:
        raise AnalysisError("it is not a profile written by the dashboard") from error
    if not isinstance(raw, dict) or not isinstance(raw.get("values", {}), dict):
        raise AnalysisError("it is not a profile written by the dashboard")
    values = {}
    for column, value in raw.get("values", {}).items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise AnalysisError(f"the value of '{column}' is neither a level nor a number")
        values[str(column)] = float(value) if isinstance(value, int | float) else value
    return {"name": str(raw.get("name") or ""), "values": values}


def view_from_link(query: Mapping[str, Sequence[str]]) -> tuple[ViewRequest, list[str]]:
    """The view a link asks for, and a sentence for every view parameter not used.

    Checks here need no data (a known sort name, well-formed profiles, at most four); whether
    the dataset has the column or level is checked by the page (:func:`check_view`).
    """
    problems: list[str] = []
    sort = (list(query.get("sort") or []) or [None])[-1]
    if sort is not None and sort not in FOREST_SORT_NAMES:
        problems.append(
            f"Link parameter sort={sort}: the forest plot sorts by "
            f"{', '.join(FOREST_SORT_NAMES)}; the default order is used instead."
        )
        sort = None
    colour = (list(query.get("colour") or []) or [None])[-1]
    profiles = None
    if "profile" in query:
        profiles = []
        for position, text in enumerate(query.get("profile") or [], start=1):
            try:
                profiles.append(_decode_profile(str(text)))
            except AnalysisError as error:
                problems.append(f"Link parameter profile number {position}: {error}; skipped.")
        if len(profiles) > MAX_LINK_PROFILES:
            problems.append(
                f"The link holds {len(profiles)} profiles; the first {MAX_LINK_PROFILES} are used."
            )
            profiles = profiles[:MAX_LINK_PROFILES]
        profiles = tuple(profiles)
    tab = (list(query.get("tab") or []) or [None])[-1]
    cuts = (list(query.get("cuts") or []) or [None])[-1]
    means = (list(query.get("means") or []) or [None])[-1]
    cwb = (list(query.get("cwb") or []) or [None])[-1]
    scale = None
    scale_text = (list(query.get("ls") or []) or [None])[-1]
    if scale_text is not None:
        if scale_text in (SCALE_ON, SCALE_OFF):
            scale = scale_text == SCALE_ON
        else:
            problems.append(
                f"Link parameter ls={shortened(scale_text)}: it is {SCALE_ON} or {SCALE_OFF}; "
                "the section stays closed."
            )
    view = ViewRequest(
        sort=sort,
        colour=colour,
        profiles=profiles,
        tab=tab,
        cuts=cuts,
        means=means,
        scale=scale,
        cwb=cwb,
    )
    return view, problems
