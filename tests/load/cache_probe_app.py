"""A one-line app for the clear_cache test: shows a value cached once per process.

Installs the dashboard's guard exactly as app.py does unless PROBE_UNGUARDED=1, so the test
can show both that an unguarded server forgets the value and that a guarded one keeps it.
"""

import os
import uuid

import streamlit as st

from pages._ui import serving

if os.environ.get("PROBE_UNGUARDED") != "1":
    serving.guard_clear_cache()


@st.cache_data(max_entries=1, ttl=3600)
def process_token() -> str:
    return uuid.uuid4().hex


st.text(f"token={process_token()}")
