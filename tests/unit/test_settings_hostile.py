"""Settings files and links of the wrong shape: a message naming the entry, never a crash."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alliance_core.analyses.settings import MAX_SETTINGS_BYTES, AnalysisSettings
from alliance_core.errors import AnalysisError


def settings_file(**entries) -> str:
    return json.dumps({"alliance_dashboard_settings": 1, **entries})


@pytest.mark.parametrize("model", [["three-level"], {"a": 1}, 3, None, True])
def test_model_of_the_wrong_type_names_the_entry(model):
    with pytest.raises(AnalysisError, match="'model'"):
        AnalysisSettings.from_json(settings_file(model=model))


@pytest.mark.parametrize("field", ["dataset", "method", "test", "ptr_scale", "page"])
@pytest.mark.parametrize("value", [[1], {"x": "y"}, 2.5, False])
def test_every_text_field_checks_its_type(field, value):
    with pytest.raises(AnalysisError, match=f"'{field}'"):
        AnalysisSettings.from_json(settings_file(**{field: value}))


def test_one_moderator_as_text_is_that_moderator_not_its_letters():
    loaded = AnalysisSettings.from_json(settings_file(moderators="PTR"))
    assert loaded.moderators == ("PTR",)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("moderators", {"PTR": 1}),
        ("moderators", [["PTR"]]),
        ("moderators", 7),
        ("filters", ["rater"]),
        ("filters", {"rater": [1, 2]}),
        ("filters", {"rater": {"a": "b"}}),
        ("reference", "rater"),
        ("reference", {"rater": ["patient"]}),
    ],
)
def test_containers_of_the_wrong_shape_name_the_entry(field, value):
    with pytest.raises(AnalysisError, match=f"'{field}"):
        AnalysisSettings.from_json(settings_file(**{field: value}))


def test_a_filter_with_one_level_as_text_keeps_that_level():
    loaded = AnalysisSettings.from_json(settings_file(filters={"rater": "patient"}))
    assert loaded.filters == {"rater": ("patient",)}


@pytest.mark.parametrize("top", ["[]", '"text"', "3", "null", "[1, 2]"])
def test_a_top_level_that_is_not_a_table_is_refused(top):
    with pytest.raises(AnalysisError, match="not a settings file"):
        AnalysisSettings.from_json(top)


def test_deeply_nested_json_is_a_message_not_a_recursion_error():
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(AnalysisError, match="larger than|nested"):
        AnalysisSettings.from_json(deep)
    nested = '{"alliance_dashboard_settings": 1, "model": ' + "[" * 5_000 + "]" * 5_000 + "}"
    with pytest.raises(AnalysisError, match="nested too deeply|'model'"):
        AnalysisSettings.from_json(nested)


def test_a_huge_file_is_refused_before_parsing():
    huge = settings_file(dataset="x" * (MAX_SETTINGS_BYTES + 1))
    with pytest.raises(AnalysisError, match="larger than"):
        AnalysisSettings.from_json(huge)
    with pytest.raises(AnalysisError, match="larger than"):
        AnalysisSettings.from_json(huge.encode())


def test_an_overlong_name_is_refused():
    with pytest.raises(AnalysisError, match="'moderators' is longer"):
        AnalysisSettings.from_json(settings_file(moderators=["m" * 5_000]))


def test_constructing_with_a_list_model_is_an_analysis_error():
    with pytest.raises(AnalysisError, match="'model'"):
        AnalysisSettings(model=["three-level"])  # type: ignore[arg-type]


def test_a_link_with_an_overlong_value_is_an_analysis_error():
    with pytest.raises(AnalysisError):
        AnalysisSettings.from_query({"mod": ["x" * 10_000]})


JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    [
        "dataset",
        "model",
        "method",
        "test",
        "moderators",
        "reference",
        "filters",
        "ptr_scale",
        "page",
        "alliance_dashboard_settings",
    ]
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(FIELDS, JSON_VALUES, max_size=10) | JSON_VALUES)
def test_any_json_is_settings_or_an_analysis_error(document):
    text = json.dumps(document)
    try:
        loaded = AnalysisSettings.from_json(text)
    except AnalysisError:
        return
    # What loads round-trips: it is a valid settings object.
    assert AnalysisSettings.from_json(loaded.to_json()) == loaded
    hash(loaded.cache_key())


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.dictionaries(
        st.sampled_from(["ds", "model", "est", "test", "ptr", "mod", "ref", "keep", "page"]),
        st.lists(st.text(max_size=30), max_size=3) | st.text(max_size=30),
        max_size=6,
    )
)
def test_any_link_is_settings_or_an_analysis_error(query):
    try:
        loaded = AnalysisSettings.from_query(query)
    except AnalysisError as error:
        assert str(error)
        return
    assert AnalysisSettings.from_query(loaded.to_query()) == loaded
