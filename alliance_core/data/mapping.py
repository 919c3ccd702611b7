"""Which column of a table plays which role in the analysis.

A bundled dataset ships with a default mapping; for an upload the dashboard suggests one from the
column names and the user edits it. Everything downstream (validation, effect sizes, the fit)
reads columns through a mapping, never by hard-coded names.

Effect sizes come in one of four forms (the first complete one is used):
``r`` + ``n`` (a correlation and its sample size, analysed as Fisher's z with vi = 1/(n − 3)),
``z`` + ``n`` (Fisher's z and its sample size), ``yi`` + ``vi`` (an effect size and its
sampling variance) and ``yi`` + ``sei`` (an effect size and its standard error, vi = sei²).

The Patient–Therapist Ratio is a study-level number: ``ptr`` (given ready-made), else
``study_patients`` / ``n_therapists`` (the study's own counts), else ``n`` / ``n_therapists``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, replace

# measure -> (words, symbol) the pages use for the effect sizes of a table.
MEASURES: dict[str, tuple[str, str]] = {
    "correlation": ("correlation", "r"),
    "smd": ("standardized mean difference", "d"),
    "log_odds_ratio": ("log odds ratio", "log OR"),
    "other": ("effect size", "yi"),
}
EFFECT_FORMS = ("r", "z", "vi", "sei")


@dataclass(frozen=True)
class ColumnMapping:
    """Roles of columns in a coding sheet.

    One effect-size form must be complete: ``r`` and ``n``, ``z`` and ``n``, ``yi`` and ``vi``
    or ``yi`` and ``sei`` (see the module docstring). ``n_therapists`` with ``study_patients``
    (or ``n``), or a ready-made ``ptr``, give the Patient–Therapist Ratio. ``measure`` names
    what the effect sizes are (a key of ``MEASURES``); correlations (r or z) are always
    "correlation", and a yi column without a measure is "other".
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
    sei: str | None = None
    z: str | None = None
    study_patients: str | None = None
    ptr: str | None = None
    measure: str | None = None

    @property
    def uses_correlations(self) -> bool:
        """Effect sizes are correlations r with their n (the r rules of validation apply)."""
        return self.r is not None and self.n is not None

    @property
    def effect_form(self) -> str | None:
        """Which form the effect sizes take: "r", "z", "vi", "sei", or None if none is complete."""
        if self.uses_correlations:
            return "r"
        if self.z is not None and self.n is not None:
            return "z"
        if self.yi is not None and self.vi is not None:
            return "vi"
        if self.yi is not None and self.sei is not None:
            return "sei"
        return None

    @property
    def row_forms(self) -> tuple[str, ...]:
        """Every complete form, in the order a row takes them (``alliance_core.data.effect_forms``):
        r+n, z+sei, z+vi, z+n, yi+vi, yi+sei. sei and vi belong to yi when yi is mapped."""
        forms = []
        if self.r is not None and self.n is not None:
            forms.append("r")
        if self.z is not None:
            if self.yi is None and self.sei is not None:
                forms.append("z_sei")
            if self.yi is None and self.vi is not None:
                forms.append("z_vi")
            if self.n is not None:
                forms.append("z")
        if self.yi is not None:
            if self.vi is not None:
                forms.append("vi")
            if self.sei is not None:
                forms.append("sei")
        return tuple(forms)

    @property
    def mixed_forms(self) -> bool:
        """The form is chosen row by row: several complete forms, or z with its SE/variance."""
        forms = self.row_forms
        return len(forms) > 1 or forms[:1] in (("z_sei",), ("z_vi",))

    @property
    def on_fisher_z(self) -> bool:
        """Effect sizes are analysed as Fisher's z and shown back as r."""
        if self.mixed_forms:
            return any(form.startswith(("r", "z")) for form in self.row_forms)
        return self.effect_form in ("r", "z")

    @property
    def effect_measure(self) -> str:
        """The measure the table holds (a key of ``MEASURES``)."""
        if self.on_fisher_z:
            return "correlation"
        return self.measure if self.measure in MEASURES else "other"

    @property
    def has_therapists(self) -> bool:
        """The Patient–Therapist Ratio can be computed (or is given)."""
        if self.ptr is not None:
            return True
        return self.n_therapists is not None and (
            self.study_patients is not None or self.n is not None
        )

    @property
    def ptr_patients(self) -> str | None:
        """The column of patient counts PTR divides: the study's own, else the effect's n."""
        if self.ptr is not None or self.n_therapists is None:
            return None
        return self.study_patients or self.n

    @property
    def ptr_inputs(self) -> tuple[str, ...]:
        """The columns PTR is computed from (missing in any → no PTR for that row)."""
        if self.ptr is not None:
            return (self.ptr,)
        if self.has_therapists:
            return tuple(dict.fromkeys((self.ptr_patients, self.n_therapists)))
        return ()

    @property
    def identifier_columns(self) -> tuple[str, ...]:
        """Columns that only name or group rows (study, es_id, label) and play no other role.

        Their cells are names, not quantities: "1.1" and "1.10", or "01" and "1", are different
        studies, so an uploaded table keeps them as the text typed
        (``UploadedTable.table_for``). A column that is also a number or a moderator is left
        out: there its value is what counts.
        """
        names = (self.study, self.es_id, self.label)
        others = set(replace(self, study=None, es_id=None, label=None).columns())
        return tuple(c for c in dict.fromkeys(names) if c is not None and c not in others)

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
            self.z,
            self.n,
            self.yi,
            self.vi,
            self.sei,
            self.n_therapists,
            self.study_patients,
            self.ptr,
            self.label,
            self.year,
            *self.moderators,
        ]
        seen: list[str] = []
        for name in named:
            if name is not None and name not in seen:
                seen.append(name)
        return seen


def measure_words(measure: str | None) -> tuple[str, str]:
    """Words and symbol for a measure: "correlation"/"r", "standardized mean difference"/"d"."""
    return MEASURES.get(measure or "other", MEASURES["other"])


def study_label(value) -> str:
    """How a study is named in figures: "Study 3" for a bare number, the value itself otherwise
    ("Eriksson et al. (1997)" stays as it is)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return f"Study {value}"
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        return f"Study {int(number)}" if number.is_integer() else f"Study {value}"
    text = str(value).strip()
    if text.isdigit() and text.isascii():
        return f"Study {text}"
    return text
