"""The bundled datasets: they load, their default roles fit, their cards are complete and true."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from alliance_core.data.datasets import (
    DATA_DIR,
    DEFAULT_DATASET,
    data_card,
    dataset_info,
    list_datasets,
    load_dataset,
)
from alliance_core.errors import AnalysisError
from tests.tools import load_script

REPOSITORY = Path(__file__).resolve().parents[2]
DATASET_NAMES = [info.name for info in list_datasets()]


def squash(text: str) -> str:
    """Whitespace-insensitive form, so line wrapping in the card does not matter."""
    return " ".join(text.split())


def test_registry_names_are_unique_and_include_the_default():
    assert len(DATASET_NAMES) == len(set(DATASET_NAMES))
    assert DATASET_NAMES[0] == DEFAULT_DATASET
    assert len(DATASET_NAMES) >= 5


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(AnalysisError) as error:
        dataset_info("no_such_data")
    for name in DATASET_NAMES:
        assert name in str(error.value)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_dataset_loads_and_its_mapping_fits(name):
    info = dataset_info(name)
    table = load_dataset(name)
    mapping = info.mapping

    assert len(table) > 0
    assert set(mapping.columns()) <= set(table.columns)
    assert info.effect_measure == ("ZCOR" if mapping.uses_correlations else "precomputed")
    if mapping.uses_correlations:
        assert table[mapping.r].between(-1, 1, inclusive="neither").all()
        assert (table[mapping.n] > 3).all()
    else:
        assert table[mapping.yi].notna().all()
        assert (table[mapping.vi] > 0).all()
    if mapping.has_therapists:
        therapists = table[mapping.n_therapists]
        assert ((therapists >= 1) & (therapists <= table[mapping.n])).all()
    if mapping.es_id is not None:
        assert table[mapping.es_id].is_unique
    if mapping.study is not None:
        # A study role means a three-level model: some study must have several effect sizes.
        assert table[mapping.study].value_counts().max() > 1
    if mapping.study is not None and mapping.es_id is not None:
        # Every effect size belongs to exactly one study.
        assert (table.groupby(mapping.es_id)[mapping.study].nunique() == 1).all()


def test_datasets_load_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert len(load_dataset(DEFAULT_DATASET)) > 0


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_card_names_source_citation_licence_and_every_column(name):
    info = dataset_info(name)
    card = data_card(name)
    flat = squash(card)

    assert card.startswith(f"## {name}")
    for field in ("**Source:**", "**Citation:**", "**Licence:**", "**A row is:**", "**Made by:**"):
        assert field in card
    assert squash(info.citation) in flat
    assert squash(info.licence) in flat
    for column in load_dataset(name).columns:
        assert f"| `{column}` |" in card, f"column {column} of {name} is not described"


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_simulated_data_say_so_and_real_data_do_not_pretend(name):
    info = dataset_info(name)
    card = data_card(name)
    if info.simulated:
        assert "SIMULATED DATA — not real studies" in card
        assert "simulated" in info.description.lower()
        assert "simulated" in info.title.lower()
    else:
        assert "SIMULATED" not in card
        assert info.description.startswith("Real data")
        assert "metadat" in card


def test_default_dataset_has_the_shape_of_the_published_meta_analysis():
    info = dataset_info(DEFAULT_DATASET)
    table = load_dataset(DEFAULT_DATASET)
    per_study = table.drop_duplicates("study")

    assert info.simulated
    assert table["study"].nunique() >= 140
    assert len(table) >= 800
    assert per_study["ptr"].min() == 1
    assert per_study["ptr"].max() > 20
    assert (per_study["n_therapists"] == 1).any()
    assert np.allclose(table["ptr"], (table["n"] / table["n_therapists"]).round(2))
    # Labels are numbered, never author names that could pass for real citations.
    assert table["label"].str.fullmatch(r"Study \d{3} \(\d{4}\)").all()


def test_default_dataset_regenerates_byte_for_byte(tmp_path):
    script = load_script("make_default_dataset")
    regenerated = tmp_path / "alliance_simulated.csv"
    script.write_default_dataset(regenerated)
    assert regenerated.read_bytes() == (DATA_DIR / "alliance_simulated.csv").read_bytes()


def test_card_lists_every_generating_parameter_with_its_value():
    card = data_card(DEFAULT_DATASET)
    parameters = load_script("make_default_dataset").PARAMETERS
    for name, value in parameters.as_dict().items():
        assert re.search(rf"^\| `{name}` \| {re.escape(str(value))} \|", card, re.MULTILINE), name


def test_card_counts_match_the_file():
    card = squash(data_card(DEFAULT_DATASET))
    table = load_dataset(DEFAULT_DATASET)
    per_study = table.drop_duplicates("study")
    negatives = int((table["r"] < 0).sum())
    assert f"{len(table)} effect sizes, {len(per_study)} studies" in card
    assert f"{per_study['n'].sum():,} patients" in card
    assert f"{negatives} correlations ({negatives / len(table):.1%}) are negative" in card


@pytest.mark.needs_r
def test_metadat_exports_reproduce_the_bundled_files(tmp_path):
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript is not installed")
    script = REPOSITORY / "scripts" / "export_metadat.R"
    result = subprocess.run(
        ["Rscript", str(script), str(tmp_path)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 and "metadat" in result.stderr:
        pytest.skip("the R package metadat is not installed")
    assert result.returncode == 0, result.stderr
    exported = sorted(path.name for path in tmp_path.glob("*.csv"))
    real = sorted(info.filename for info in list_datasets() if not info.simulated)
    assert exported == real
    for filename in exported:
        assert (tmp_path / filename).read_bytes() == (DATA_DIR / filename).read_bytes()


def test_real_datasets_keep_the_metadat_columns():
    # Spot check against the metadat help pages: original names, nothing added.
    expected = {
        "molloy2014": ["authors", "year", "ni", "ri", "controls", "design", "a_measure",
                       "c_measure", "meanage", "quality"],
        "mcdaniel1994": ["study", "ni", "ri", "type", "struct"],
        "crede2010": ["studyid", "year", "source", "sampleid", "criterion", "class", "ni", "ri"],
        "konstantopoulos2011": ["district", "school", "study", "year", "yi", "vi"],
        "assink2016": ["study", "esid", "id", "yi", "vi", "pubstatus", "year", "deltype"],
    }  # fmt: skip
    for name, columns in expected.items():
        assert list(load_dataset(name).columns) == columns
    # Missing values survive the round trip as missing, not as the text "NA".
    assert load_dataset("mcdaniel1994")["type"].isna().sum() == 3
