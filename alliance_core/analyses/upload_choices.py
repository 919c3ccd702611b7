"""What a settings file (version 3) keeps of an uploaded coding sheet.

The analysis settings alone cannot restore an analysis of one's own sheet: its column roles,
missing codes and level merges are choices too. ``UploadChoices`` holds them with the upload's
file name, SHA-256 and columns, so that loading the file again

- with the same file (same SHA-256) restores the whole analysis;
- with another file of the same columns (a corrected or newer sheet) restores it and says the
  file differs;
- with a file of other columns says what differs (``UploadChoices.differences``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields

from alliance_core.data.mapping import ColumnMapping
from alliance_core.errors import AnalysisError

_TEXT_ROLES = tuple(f.name for f in fields(ColumnMapping) if f.name != "moderators")


@dataclass(frozen=True)
class UploadChoices:
    """An upload's identity and the choices made on the Data page."""

    file_name: str
    sha256: str
    columns: tuple[str, ...]
    mapping: ColumnMapping
    sheet: str | None = None
    real_values: tuple[str, ...] = ()  # missing codes taken back (real values)
    extra_codes: tuple[str, ...] = ()  # missing codes added
    kept_apart: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # level merges

    def to_dict(self) -> dict:
        mapping = asdict(self.mapping)
        mapping["moderators"] = list(self.mapping.moderators)
        return {
            "file_name": self.file_name,
            "sha256": self.sha256,
            "columns": list(self.columns),
            "sheet": self.sheet,
            "mapping": mapping,
            "missing_codes": {"added": list(self.extra_codes), "real": list(self.real_values)},
            "level_merges_kept_apart": [list(pair) for pair in self.kept_apart],
        }

    @classmethod
    def from_dict(cls, data: object) -> UploadChoices:
        """The choices of a settings file's "upload" entry; AnalysisError naming a bad entry."""
        if not isinstance(data, Mapping):
            raise AnalysisError("The settings file's 'upload' entry should be a table.")
        mapping = data.get("mapping")
        if not isinstance(mapping, Mapping):
            raise AnalysisError("The settings file's upload 'mapping' should be a table.")
        roles = {}
        for role in _TEXT_ROLES:
            value = mapping.get(role)
            if value is not None and not isinstance(value, str):
                raise AnalysisError(f"The upload mapping's '{role}' should be a column name.")
            roles[role] = value
        codes = data.get("missing_codes") or {}
        if not isinstance(codes, Mapping):
            raise AnalysisError("The settings file's 'missing_codes' should be a table.")
        kept = data.get("level_merges_kept_apart") or []
        if not isinstance(kept, list) or not all(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
            for pair in kept
        ):
            raise AnalysisError("'level_merges_kept_apart' should be a list of [column, level].")
        sheet = data.get("sheet")
        if sheet is not None and not isinstance(sheet, str):
            raise AnalysisError("The upload's 'sheet' should be a sheet name.")
        return cls(
            file_name=_text(data.get("file_name"), "file_name"),
            sha256=_text(data.get("sha256"), "sha256"),
            columns=_texts(data.get("columns"), "columns"),
            mapping=ColumnMapping(
                **roles, moderators=_texts(mapping.get("moderators") or [], "moderators")
            ),
            sheet=sheet,
            real_values=_texts(codes.get("real") or [], "missing_codes.real"),
            extra_codes=_texts(codes.get("added") or [], "missing_codes.added"),
            kept_apart=tuple((column, level) for column, level in kept),
        )

    def differences(self, file_name: str, sha256: str, columns: Sequence[str]) -> list[str]:
        """Sentences on how an upload differs from the one these choices were saved for."""
        if sha256 == self.sha256:
            return []
        columns = [str(c) for c in columns]
        if columns == list(self.columns):
            return [
                f"'{file_name}' is not the file the settings were saved with ('{self.file_name}'),"
                " but it has the same columns, so the whole analysis was restored on it."
            ]
        missing = [c for c in self.columns if c not in columns]
        extra = [c for c in columns if c not in self.columns]
        parts = [f"'{file_name}' has other columns than '{self.file_name}', which the settings "]
        parts[0] += "were saved with"
        if missing:
            parts.append("without " + ", ".join(f"'{c}'" for c in missing[:8]))
        if extra:
            parts.append("with " + ", ".join(f"'{c}'" for c in extra[:8]))
        return [
            ": ".join([parts[0], "; ".join(parts[1:])]) + ". The column roles, codes and merges "
            "were not restored; the analysis choices were applied where they fit."
        ]


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise AnalysisError(f"The upload's '{name}' should be text.")
    return value


def _texts(value: object, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise AnalysisError(f"The upload's '{name}' should be a list of texts.")
    return tuple(value)
