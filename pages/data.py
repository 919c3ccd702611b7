"""Data page: the chosen dataset as a table, with where it comes from."""

import streamlit as st

from alliance_core.datasets import list_datasets, load_dataset

info = next(d for d in list_datasets() if d.name == st.session_state["dataset"])
st.title(info.title)
if info.simulated:
    st.info("Simulated data: generated for teaching, not collected from real studies.")
st.caption(info.citation)
st.dataframe(load_dataset(info.name), hide_index=True)
