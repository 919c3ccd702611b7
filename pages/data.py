"""Data: what goes into the analysis, where it comes from, and your own coding sheet."""

import streamlit as st

from alliance_core.analyses.run import apply_filters
from alliance_core.data.uploads import template as uploads_template
from alliance_core.errors import AnalysisError
from alliance_core.formatting import escape_markdown
from alliance_core.wording.ptr_slope import PTR_SLOPE_HEADING, PTR_SLOPE_MEANING
from pages._ui import downloads, loading, render, session, sidebar, tables, upload_form

ctx = sidebar.context()
render.page_header("Data", ctx, needs_data=False)
data = ctx.data

if data is not None:
    if data.info is not None:
        render.markdown(data.info.description)
        if data.mapping.has_therapists:
            st.caption(f"**{PTR_SLOPE_HEADING}.** {PTR_SLOPE_MEANING}")
        st.caption(f"**Source:** {data.info.citation}  \n**Licence:** {data.info.licence}")

    st.subheader("Rows in the analysis")
    try:
        run = loading.fitted(ctx)
    except AnalysisError as error:
        run = None
        st.error(escape_markdown(error), icon=":material/error:")
    if run is not None:
        analysed = tables.analysed_rows(run)
        st.markdown(
            f"**{len(analysed):,}** effect sizes from **{run.result.n_studies:,}** studies go "
            f"into the model (of {len(data.table):,} usable rows)."
        )
        render.model_statement(run)
        render.analysis_notes(run)
        render.dataframe(analysed, hide_index=True, width="stretch")
        downloads.result_downloads(run, ctx)
    else:
        filtered = apply_filters(data.table, ctx.settings.filters)
        st.caption(f"{len(filtered):,} rows after the filter; the model could not be fitted.")
        render.dataframe(filtered, hide_index=True, width="stretch")

st.subheader("Use your own coding sheet")
st.file_uploader(
    "Upload a coding sheet: CSV, TSV or Excel (.xlsx), one row per effect size",
    type=["csv", "tsv", "txt", "xlsx", "xlsm"],
    key=session.UPLOAD_FILE,
    on_change=upload_form.receive_upload,
)
if st.session_state.get(session.UPLOAD_ERROR):
    st.error(escape_markdown(st.session_state[session.UPLOAD_ERROR]), icon=":material/error:")

view = loading.upload_view()
if view is not None:
    st.markdown(f"**Uploaded:** {escape_markdown(view.record.name)}")
    upload_form.kept_on_server()
    if st.session_state.get(session.UPLOAD_NOTICE):
        st.info(escape_markdown(st.session_state[session.UPLOAD_NOTICE]), icon=":material/sync:")
    report = view.uploaded.report
    st.info(escape_markdown(report.describe()), icon=":material/description:")
    for note in report.notes:
        st.caption(f":material/info: {escape_markdown(note)}")
    upload_form.sheet_choice(view)
    upload_form.missing_values(view)

    st.markdown("**Column roles** (suggested from the column names; change any of them)")
    upload_form.role_reasons(view)
    upload_form.mapping_editor(view)
    upload_form.level_spellings(view)

    st.markdown("**Validation**")
    validation = view.validation
    if not validation.ok:
        st.error(escape_markdown(validation.summary()), icon=":material/error:")
    elif validation.problems:
        st.warning(escape_markdown(validation.summary()), icon=":material/warning:")
    else:
        st.success(escape_markdown(validation.summary()), icon=":material/check_circle:")
    if view.problem and validation.ok:
        st.error(escape_markdown(view.problem), icon=":material/error:")
    if validation.effect_forms:
        with st.expander("Effect-size form of each row", icon=":material/rule:"):
            render.dataframe(
                tables.effect_form_rows(validation.effect_forms), hide_index=True, width="stretch"
            )
    if validation.problems:
        st.caption("Row numbers are spreadsheet rows: the header is row 1.")
        render.dataframe(validation.problems_frame(), hide_index=True, width="stretch")
    if ctx.data is None or ctx.data.upload is None:
        st.caption("Choose **Your upload** under *Data source* in the sidebar to analyse it.")

with st.expander("File format and template", icon=":material/help:"):
    st.download_button(
        "Download the template (CSV)",
        data=uploads_template.template_csv(),
        file_name="alliance-coding-sheet-template.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
    )
    render.markdown(uploads_template.FORMAT_DESCRIPTION)
