"""PTR curves per level of a categorical moderator that interacts with PTR.

With ``mods = ~ log_PTR * alliance_rater`` every rater has its own PTR slope, so one curve at
the reference level would show one rater's slope as if it were everyone's. ``level_curves``
turns such a model into one what-if profile per level of the interacting moderator, which
``ptr_curve_figure`` draws (each with its band under the chosen inference) and
``ptr_slope_readout`` reads out, level by level.
"""

from __future__ import annotations

from dataclasses import dataclass

from alliance_core.figures.ptr_curve import MAX_PROFILES, ptr_coding
from alliance_core.model.results import MetaResult


@dataclass(frozen=True)
class LevelCurves:
    """The moderator whose levels get a curve each, the profiles to draw, the levels left out
    (beyond ``MAX_PROFILES``) and the other interacting moderators (held at their reference)."""

    column: str
    profiles: tuple[dict, ...]
    left_out: tuple[str, ...] = ()
    others: tuple[str, ...] = ()

    def note(self) -> str:
        """One sentence on what the curves show (plain text; the names are the user's)."""
        text = (
            f"PTR interacts with {self.column}: one curve per level of {self.column}, each "
            "with its own PTR slope."
        )
        if self.left_out:
            text += (
                f" {len(self.left_out)} level(s) of {self.column} are not drawn (at most "
                f"{MAX_PROFILES} curves): {', '.join(self.left_out)}."
            )
        if self.others:
            text += (
                f" PTR also interacts with {', '.join(self.others)}, held at its reference "
                "level here."
            )
        return text


def ptr_partners(res: MetaResult, ptr_column: str = "ptr") -> tuple[str, ...]:
    """The categorical moderators that interact with PTR in this model, in model order."""
    ptr = {column for column, _ in ptr_coding(res, ptr_column).model_columns}
    partners = []
    for term in res.design.interactions:
        columns = [part.column for part in term.parts]
        if len(columns) == 2 and ptr & set(columns):
            partner = next(part for part in term.parts if part.column not in ptr)
            if partner.kind == "categorical" and partner.column not in partners:
                partners.append(partner.column)
    return tuple(partners)


def level_curves(
    res: MetaResult, ptr_column: str = "ptr", prefer: str | None = None
) -> LevelCurves | None:
    """One profile per level of the moderator PTR interacts with (``prefer`` when it is one of
    them, e.g. the column the bubbles are coloured by); None without such an interaction."""
    partners = ptr_partners(res, ptr_column)
    if not partners:
        return None
    column = prefer if prefer in partners else partners[0]
    levels = [str(level) for level in res.design.term(column).levels]
    profiles = tuple(
        {"name": f"{column} = {level}", "values": {column: level}}
        for level in levels[:MAX_PROFILES]
    )
    return LevelCurves(
        column=column,
        profiles=profiles,
        left_out=tuple(levels[MAX_PROFILES:]),
        others=tuple(p for p in partners if p != column),
    )
