"""Entrypoint of the dashboard: page setup, the shared sidebar and the navigation.

The sidebar (data and what-if choices) is built here, so it is the same on every page and its
widgets keep their values when the user changes page. The URL mirrors the choices after every
run, so the address bar is always a link to the current view.
"""

from pathlib import Path

import streamlit as st

from pages._ui import projector, render, serving, sidebar

serving.guard_clear_cache()  # no browser may empty every session's caches

st.set_page_config(
    page_title="Alliance–outcome meta-analysis",
    page_icon=":material/handshake:",
    layout="wide",
    initial_sidebar_state=projector.sidebar_state(),
)

PAGES_DIR = Path(__file__).parent / "pages"  # absolute: the app runs from any directory
pages = {
    "overview": st.Page(
        PAGES_DIR / "overview.py", title="Overview", icon=":material/insights:", default=True
    ),
    "data": st.Page(
        PAGES_DIR / "data.py", title="Data", icon=":material/table_view:", url_path="data"
    ),
    "forest": st.Page(
        PAGES_DIR / "forest.py",
        title="Forest plot",
        icon=":material/align_horizontal_left:",
        url_path="forest",
    ),
    "funnel": st.Page(
        PAGES_DIR / "funnel.py",
        title="Publication bias",
        icon=":material/filter_list:",
        url_path="funnel",
    ),
    "moderators": st.Page(
        PAGES_DIR / "moderators.py",
        title="Moderators & PTR",
        icon=":material/tune:",
        url_path="moderators",
    ),
    "sensitivity": st.Page(
        PAGES_DIR / "sensitivity.py",
        title="Sensitivity",
        icon=":material/troubleshoot:",
        url_path="sensitivity",
    ),
    "simulator": st.Page(
        PAGES_DIR / "simulator.py",
        title="Simulator",
        icon=":material/science:",
        url_path="simulator",
    ),
    "lesson": st.Page(
        PAGES_DIR / "lesson.py", title="Lesson", icon=":material/school:", url_path="lesson"
    ),
    "methods": st.Page(
        PAGES_DIR / "methods.py", title="Methods", icon=":material/menu_book:", url_path="methods"
    ),
}
current = st.navigation(list(pages.values()))

ctx = None
with render.shown_errors("The sidebar"):
    ctx = sidebar.build_sidebar(current, pages)
if ctx is None:
    st.stop()
projector.projector_toggle()
sidebar.write_url(ctx)
sidebar.show_notices(ctx)
sidebar.set_context(ctx)
try:
    with render.shown_errors("This page"):
        current.run()
    sidebar.refresh_share_link()
finally:
    sidebar.set_context(None)
