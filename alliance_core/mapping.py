"""Which column of a table plays which role in the analysis.

A bundled dataset ships with a default mapping; for an upload the dashboard suggests one from the
column names and the user edits it. Everything downstream (validation, effect sizes, the fit)
reads columns through a mapping, never by hard-coded names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class ColumnMapping:
    """Roles of columns in a coding sheet.

    Either ``r`` and ``n`` (a correlation and its patient sample size) or ``yi`` and ``vi``
    (a precomputed effect size and its sampling variance) must be given.
    ``n_therapists`` is optional: without it the Patient-Therapist Ratio cannot be computed.
    """

    study: str | None = None
    es_id: str | None = None
    r: str | None = None
    n: str | None = None
    yi: str | None = None
    vi: str | None = None
    n_therapists: str | None = None
    label: str | None = None
    year: str | None = None
    moderators: tuple[str, ...] = field(default_factory=tuple)

    @property
    def uses_correlations(self) -> bool:
        return self.r is not None and self.n is not None

    @property
    def has_therapists(self) -> bool:
        return self.n_therapists is not None and self.n is not None

    def with_changes(self, **changes) -> ColumnMapping:
        """A copy with some roles reassigned (the mapping itself is immutable)."""
        if "moderators" in changes and changes["moderators"] is not None:
            changes["moderators"] = tuple(changes["moderators"])
        return replace(self, **changes)

    def columns(self) -> list[str]:
        """Every column this mapping refers to, each once, in role order."""
        named = [
            self.study,
            self.es_id,
            self.r,
            self.n,
            self.yi,
            self.vi,
            self.n_therapists,
            self.label,
            self.year,
            *self.moderators,
        ]
        seen: list[str] = []
        for name in named:
            if name is not None and name not in seen:
                seen.append(name)
        return seen
