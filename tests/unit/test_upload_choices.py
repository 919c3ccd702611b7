"""Settings files of version 3 keep an uploaded sheet's mapping, missing codes and level merges
with the file's name and SHA-256."""

from __future__ import annotations

import json

import pytest

from alliance_core.analyses.settings import (
    SETTINGS_VERSION,
    AnalysisSettings,
    upload_choices_from_json,
)
from alliance_core.analyses.upload_choices import UploadChoices
from alliance_core.data.mapping import ColumnMapping
from alliance_core.errors import AnalysisError

CHOICES = UploadChoices(
    file_name="sheet.csv",
    sha256="ab" * 32,
    columns=("Study", "r", "n", "Rater"),
    mapping=ColumnMapping(study="Study", r="r", n="n", moderators=("Rater",)),
    sheet=None,
    real_values=("none",),
    extra_codes=("k.a.",),
    kept_apart=(("Rater", "patient"),),
)


def test_the_settings_file_round_trips_the_upload_choices():
    settings = AnalysisSettings(dataset="upload", moderators=("Rater",))
    text = settings.to_json(CHOICES)
    data = json.loads(text)
    assert data["alliance_dashboard_settings"] == SETTINGS_VERSION == 3
    assert data["upload"]["sha256"] == "ab" * 32
    assert data["upload"]["missing_codes"] == {"added": ["k.a."], "real": ["none"]}
    assert AnalysisSettings.from_json(text) == settings
    assert upload_choices_from_json(text) == CHOICES
    assert upload_choices_from_json(settings.to_json()) is None


def test_a_version_2_three_level_file_is_not_read_as_legacy():
    data = {"alliance_dashboard_settings": 2, **AnalysisSettings(rho=0.4).to_dict()}
    assert AnalysisSettings.from_json(json.dumps(data)).rho == 0.4


def test_what_differs_is_said():
    assert CHOICES.differences("sheet.csv", "ab" * 32, CHOICES.columns) == []
    (same_columns,) = CHOICES.differences("sheet v2.csv", "cd" * 32, CHOICES.columns)
    assert "same columns" in same_columns and "'sheet.csv'" in same_columns
    (other,) = CHOICES.differences("other.csv", "cd" * 32, ["Study", "r", "N", "Rater", "pd"])
    assert "without 'n'" in other and "with 'N', 'pd'" in other


@pytest.mark.parametrize(
    "entry",
    [[], {"mapping": {"r": 3}}, {"mapping": {}, "file_name": 1}, {"mapping": {}, "columns": "x"}],
)
def test_a_malformed_upload_entry_is_refused_by_name(entry):
    text = json.dumps({"alliance_dashboard_settings": 3, "upload": entry})
    with pytest.raises(AnalysisError, match="upload|mapping"):
        upload_choices_from_json(text)
