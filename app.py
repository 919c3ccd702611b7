"""Entrypoint of the dashboard: page setup, the dataset choice, and navigation."""

from pathlib import Path

import streamlit as st

from alliance_core.datasets import DEFAULT_DATASET, list_datasets

st.set_page_config(page_title="Alliance–outcome meta-analysis", layout="wide")

datasets = {info.name: info for info in list_datasets()}
names = list(datasets)
with st.sidebar:
    # Keyed widget in the entrypoint: every page reads the choice from st.session_state.
    st.selectbox(
        "Dataset",
        names,
        index=names.index(DEFAULT_DATASET),
        format_func=lambda name: datasets[name].title,
        key="dataset",
    )

pages = Path(__file__).parent / "pages"
st.navigation([st.Page(pages / "data.py", title="Data")]).run()
