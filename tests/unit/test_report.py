"""The report: HTML that is valid and escapes user text, a .docx with its tables and figures."""

from __future__ import annotations

import html
import io
import struct
import zlib

import docx
import html5lib
import pytest

import alliance_core as ac
from alliance_core import figures
from alliance_core.analyses.marginal_flags import mean_cautions
from alliance_core.analyses.run import run_analysis
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.datasets import dataset_info, load_dataset
from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_p
from alliance_core.handover.report import SIMULATED_NOTICE, build_report, state_report
from alliance_core.handover.report_tables import r_text
from tests.tools import bundled_provenance
from tests.unit.reproduce_states import STATES, analysis_of, prepare


def tiny_png() -> bytes:
    """A valid 1x1 PNG, made here so the tests need no browser."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\xff\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def png_exporter(fig, fmt):
    assert fmt == "png"
    return tiny_png()


def failing_exporter(fig, fmt):
    raise AnalysisError("PNG/SVG export needs Chromium")


def report_of(state, exporter=png_exporter):
    run, mapping, prov, on_r = analysis_of(state)
    pooled = run_analysis(
        run.data, mapping, run.settings.with_changes(moderators=(), filters={}), table=run.data
    )
    figs = {
        "forest": figures.forest_figure(run.result, transform="r" if on_r else None),
        "funnel": figures.funnel_figure(pooled.result, scale="r" if on_r else None),
    }
    if run.ptr_column:
        figs["ptr"] = figures.ptr_curve_figure(run.result, ptr_column="PTR")
    return run, build_report(run, pooled, prov, on_r_scale=on_r, figures=figs, exporter=exporter)


@pytest.fixture(scope="module")
def simulated():
    return report_of(STATES[0])


@pytest.fixture(scope="module")
def upload():
    return report_of(next(s for s in STATES if s.name == "upload-awkward-names"), failing_exporter)


def test_simulated_report_says_so_on_its_first_line(simulated):
    _, rep = simulated
    html = rep.to_html()
    body = html.split("<body>", 1)[1].lstrip()
    assert body.startswith(f'<p class="notice">{SIMULATED_NOTICE}</p>')
    document = docx.Document(io.BytesIO(rep.to_docx()))
    assert document.paragraphs[0].text == SIMULATED_NOTICE


def test_html_report_is_valid_html(simulated, upload):
    for _, rep in (simulated, upload):
        parser = html5lib.HTMLParser(strict=True)
        parser.parse(rep.to_html())  # raises ParseError on any error
        assert not parser.errors


def test_results_carry_the_model_numbers_in_apa_style(simulated):
    run, rep = simulated
    res = run.result
    text = " ".join(rep.results)
    row = res.coefficients.loc["log_PTR"]
    assert "The PTR slope was b = " in text
    assert format_p(row["pval"]) in text
    assert f"Q({res.QE_df})" in text
    assert "Egger's regression test" in text and "PET-PEESE" in text
    assert "p = 0." not in text  # APA: no leading zero
    methods = " ".join(rep.methods)
    assert "Konstantopoulos, 2011" in methods and "Viechtbauer, 2005" in methods
    refs = " ".join(rep.references)
    assert "Konstantopoulos, S. (2011)" in refs and "Cheung, M. W.-L. (2014)" in refs


def test_knapp_hartung_and_q_profile_are_cited_where_used():
    state = next(s for s in STATES if s.name == "molloy2014-knha-ref")
    _, rep = report_of(state)
    refs = " ".join(rep.references)
    assert "Knapp, G., & Hartung, J. (2003)" in refs
    assert "Viechtbauer, W. (2007)" in refs  # Q-profile interval of tau2
    assert rep.notice is None


def test_docx_holds_tables_and_figures(simulated):
    run, rep = simulated
    document = docx.Document(io.BytesIO(rep.to_docx()))
    assert len(document.tables) == 2  # meta-regression and heterogeneity
    regression = document.tables[0]
    assert [c.text for c in regression.rows[0].cells][:3] == ["Predictor", "b", "SE"]
    assert len(regression.rows) == 1 + run.result.p
    assert len(document.inline_shapes) == 3  # forest, funnel, PTR curve
    texts = [p.text for p in document.paragraphs]
    assert any(t.startswith("Figure 1. Forest plot") for t in texts)
    assert any(t.startswith("sha256: ") for t in texts)


def test_figures_that_cannot_be_drawn_are_named_and_user_text_escaped(upload):
    _, rep = upload
    html = rep.to_html()
    assert "The figure could not be drawn here: PNG/SVG export needs Chromium" in html
    assert "<img" not in html
    assert "Rater; &quot;type&quot;" in html  # a column name, escaped
    assert "=awkward sheet, v2.csv" in html
    document = docx.Document(io.BytesIO(rep.to_docx()))
    assert len(document.inline_shapes) == 0
    assert any("could not be drawn" in p.text for p in document.paragraphs)


def _named(name: str):
    return next(s for s in STATES if s.name == name)


def test_che_report_with_robust_inference_names_rho_cr2_and_their_references():
    prepared = prepare(_named("simulated-3L-CHE-rho06-CR2"))
    run, robust = prepared.run, prepared.robust
    pooled = run_analysis(
        run.data, prepared.mapping, run.settings.with_changes(moderators=()), table=run.data
    )
    rep = build_report(
        run, pooled, prepared.provenance, on_r_scale=True, exporter=png_exporter, robust=robust
    )
    methods = " ".join(rep.methods)
    assert "correlate with ρ = 0.6" in methods and "Pustejovsky & Tipton, 2022" in methods
    assert (
        "CR2" in methods and "Tipton, 2015" in methods and "Pustejovsky & Tipton, 2018" in methods
    )
    references = " ".join(rep.references)
    for source in ("Prevention Science, 23", "Psychological Methods, 20", "Economic Statistics"):
        assert source in references
    table = next(t for t in rep.tables if "cluster-robust" in t.title)
    assert len(table.rows) == len(robust.coefficients)
    # The robust df shown are the Satterthwaite df of the robust result.
    assert table.rows[0][4] == f"{robust.coefficients['df'].iloc[0]:.1f}"
    assert "HTZ" in table.note
    html5lib.HTMLParser(strict=True).parse(rep.to_html())


def test_aggregated_report_says_how_the_studies_were_combined():
    run, mapping, prov, on_r = analysis_of(_named("assink2016-2L-aggregated-rho06"))
    rep = build_report(run, run, prov, on_r_scale=on_r, exporter=png_exporter)
    methods = " ".join(rep.methods)
    assert "aggregated to one inverse-variance weighted effect" in methods
    assert "ρ = 0.6" in methods and f"the {run.result.k} study effects" in methods
    assert f"({int(run.data['ki'].sum())} in all)" in methods


def test_trim_and_fill_reading_says_the_filled_data_use_z_tests_after_knapp_hartung():
    from alliance_core.handover.report import bias_readings

    run, mapping, _, on_r = analysis_of(_named("molloy2014-knha-ref"))
    pooled = run_analysis(
        run.data, mapping, run.settings.with_changes(moderators=()), table=run.data
    ).result
    assert pooled.test == "knha"
    text = dict(bias_readings(pooled, on_r))["Trim-and-fill"]
    assert "with z tests for the filled data, as metafor's trimfill" in text


def test_cr2_report_states_the_robust_pooled_prediction_with_its_own_df():
    """Under CR2 the Results' pooled CI, PI and test are the Overview's robust ones (robust
    se, t on the estimate's own Satterthwaite df), not the model-based ones."""
    prepared = prepare(_named("simulated-3L-CHE-rho06-CR2"))
    run = prepared.run
    pooled = run_analysis(
        run.data,
        prepared.mapping,
        run.settings.with_changes(moderators=(), inference="CR2"),
        table=run.data,
    )
    assert pooled.robust is not None
    rep = build_report(
        run,
        pooled,
        prepared.provenance,
        on_r_scale=True,
        exporter=png_exporter,
        robust=prepared.robust,
    )
    text = rep.results[0]
    pred = pooled.robust.predict(transform="r").iloc[0]
    assert f"CI [{r_text(pred['ci_lb'])}, {r_text(pred['ci_ub'])}]" in text
    assert f"prediction interval of [{r_text(pred['pi_lb'])}, {r_text(pred['pi_ub'])}]" in text
    row = pooled.robust.coefficients.iloc[0]
    assert f"t({row['df']:.1f}) = {row['statistic']:.2f}" in text
    assert "z = " not in text


def _dashboard_report(name: str, **choices):
    """The report of a dashboard state (the dashboard's start for ``name``: three-level REML,
    with ``choices``) with the forest plot the dashboard draws for it (under CR2 with the
    robust band), and that figure."""
    info = dataset_info(name)
    settings = AnalysisSettings(dataset=name, model="three-level", method="REML", **choices)
    state = ac.analysis_state(load_dataset(name), info.mapping, settings)
    run = state.model if state.moderated is not None else state.pooled
    forest = figures.forest_figure(
        run.result, transform="r" if state.on_r_scale else None, band=run.band_inference()
    )
    provenance = bundled_provenance(run, name)
    report = state_report(state, provenance, figures={"forest": forest}, exporter=png_exporter)
    return run, forest, report


def _figure_captions(report) -> tuple[str, list[str]]:
    document = docx.Document(io.BytesIO(report.to_docx()))
    return report.to_html(), [p.text for p in document.paragraphs]


def test_forest_caption_describes_the_categorical_reference_level_diamond():
    """assink2016 with deltype under CR2: the diamond is the prediction at the reference level,
    not the pooled estimate; the HTML and Word captions say what the figure's own note says."""
    run, forest, report = _dashboard_report("assink2016", moderators=("deltype",), inference="CR2")
    reference = run.result.design.term("deltype").reference
    note = next(n for n in forest.layout.meta["notes"] if n.startswith("Meta-regression"))
    described = note.removeprefix("Meta-regression: the diamond is ").removesuffix(".")
    assert f"deltype = {reference} (reference level)" in described
    caption = report.figures[0].caption
    assert f"the diamond is {described}, and the bar below it the prediction interval." in caption
    assert "the diamond is the pooled estimate" not in caption
    html_text, paragraphs = _figure_captions(report)
    assert html.escape(f"the diamond is {described}", quote=False) in html_text
    assert "the diamond is the pooled estimate" not in html_text
    assert any(f"the diamond is {described}" in p for p in paragraphs)
    # SMD data: the drawn figure's own notes do not call the scale Fisher's z.
    assert not any("Fisher" in n for n in forest.layout.meta["notes"])


def test_forest_caption_of_a_pooled_model_says_pooled_estimate():
    run, _forest, report = _dashboard_report("assink2016", moderators=())
    assert run.result.p == 1
    caption = report.figures[0].caption
    assert caption.startswith(
        "Each row is a study's effect with its confidence interval; the diamond is the pooled "
        f"estimate (three-level model, {run.result.method}), and the bar below it the "
        "prediction interval."
    )


def test_marginal_means_table_marks_the_levels_the_page_marks():
    """assink2016 by delinquency type under CR2: the report's marginal means table marks the
    levels the Moderators page marks (a single study; CR2 df below 4), each with its reason
    in the note, and leaves the others unmarked."""
    run, _, report = _dashboard_report("assink2016", moderators=("deltype",), inference="CR2")
    info = dataset_info("assink2016")
    settings = AnalysisSettings(
        dataset="assink2016",
        model="three-level",
        method="REML",
        moderators=("deltype",),
        inference="CR2",
    )
    state = ac.analysis_state(load_dataset("assink2016"), info.mapping, settings)
    means = state.moderated.result.marginal_means("deltype", robust=state.moderated.robust)
    cautions = mean_cautions(state.moderated, state.flags_of(state.moderated), means)
    assert set(cautions) == {"covert", "overt"}  # one study; df 2.7 (clubSandwich: 2.67)
    table = next(t for t in report.tables if t.title == "Marginal means by deltype")
    marked = {row[0].removesuffix(" †") for row in table.rows if row[0].endswith(" †")}
    assert marked == set(cautions)
    for level, reason in cautions.items():
        assert f"† {level}: the interval cannot be trusted ({reason})." in table.note
    assert "† general" not in table.note
