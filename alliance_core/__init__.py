"""alliance_core: multilevel meta-analysis of the alliance-outcome correlation.

A short pipeline of verbs over one result object, named as a meta-analyst knows them::

    import alliance_core as ac
    dat = ac.escalc(df, r="r", n="n", measure="ZCOR")       # copy with yi, vi
    res = ac.fit(dat, moderators=["ptr", "rater"], cluster="study")
    res.coefficients, res.sigma2, res.QM, res.I2
    res.predict({"ptr": [1, 5, 10]}, transform="r")
    res.robust(method="CR2")                                  # cluster-robust CR2 tests
    print(res.summary())
    fig = ac.ptr_curve_figure(res, ptr_column="ptr")           # plotly Figure

The package never imports streamlit: it serves the dashboard, notebooks and scripts alike.
"""

from alliance_core import figures
from alliance_core.analyses import bias, selection, sensitivity, specification
from alliance_core.analyses.bias import egger_test, pet_peese, rank_correlation_test, trim_and_fill
from alliance_core.analyses.fail_safe import FailSafeN, fsn
from alliance_core.analyses.influence import influence_diagnostics
from alliance_core.analyses.model_comparison import ModelComparison, model_comparison
from alliance_core.analyses.run import AnalysisRun, effect_size_table, run_analysis
from alliance_core.analyses.selection import SelectionResult, selmodel
from alliance_core.analyses.sensitivity import cumulative, leave_one_out
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.analyses.specification import specification_curve
from alliance_core.analyses.state import AnalysisState, ModelFlags, analysis_state
from alliance_core.analyses.subgroups import subgroup_fits
from alliance_core.data import datasets, uploads
from alliance_core.data.datasets import DEFAULT_DATASET, list_datasets, load_dataset
from alliance_core.data.effect_sizes import escalc, patient_therapist_ratio, r_to_z, transf, z_to_r
from alliance_core.data.mapping import ColumnMapping
from alliance_core.errors import AnalysisError
from alliance_core.figures import (
    export_figure,
    forest_figure,
    funnel_figure,
    orchard_figure,
    ptr_curve_figure,
    ptr_slope_readout,
)
from alliance_core.model.aggregation import aggregate
from alliance_core.model.components import variance_ci
from alliance_core.model.design import (
    InteractionTerm,
    ModelDesign,
    ModeratorTerm,
    build_design,
    level_order,
)
from alliance_core.model.fitting import fit
from alliance_core.model.inference import LikelihoodRatioTest, compare
from alliance_core.model.location_scale import LocationScaleResult
from alliance_core.model.marginal import MarginalMeans, marginal_means
from alliance_core.model.results import MetaResult, WaldTest
from alliance_core.model.robust import RobustResult, robust
from alliance_core.model.wild_bootstrap import WildBootstrapResult, wild_bootstrap
from alliance_core.teaching import patient_level, simulate
from alliance_core.teaching import simulator as teaching
from alliance_core.teaching.patient_level import (
    PatientLevelResult,
    fit_patient_level,
    validate_patient_data,
)
from alliance_core.teaching.patient_level_figure import therapist_means_figure
from alliance_core.teaching.simulate import SimulationParameters, simulate_meta_analysis
from alliance_core.teaching.simulator import PRESETS, SimulationRun, run_simulation
from alliance_core.wording import reading

ptr = patient_therapist_ratio

__all__ = [
    "bias",
    "cumulative",
    "egger_test",
    "influence_diagnostics",
    "leave_one_out",
    "pet_peese",
    "rank_correlation_test",
    "selection",
    "selmodel",
    "fsn",
    "FailSafeN",
    "SelectionResult",
    "sensitivity",
    "specification",
    "specification_curve",
    "trim_and_fill",
    "PRESETS",
    "PatientLevelResult",
    "SimulationRun",
    "fit_patient_level",
    "patient_level",
    "run_simulation",
    "teaching",
    "therapist_means_figure",
    "validate_patient_data",
    "DEFAULT_DATASET",
    "AnalysisError",
    "AnalysisRun",
    "AnalysisSettings",
    "AnalysisState",
    "ModelFlags",
    "analysis_state",
    "SimulationParameters",
    "datasets",
    "effect_size_table",
    "export_figure",
    "figures",
    "forest_figure",
    "funnel_figure",
    "orchard_figure",
    "list_datasets",
    "load_dataset",
    "ptr_curve_figure",
    "ptr_slope_readout",
    "reading",
    "run_analysis",
    "simulate",
    "simulate_meta_analysis",
    "subgroup_fits",
    "uploads",
    "ColumnMapping",
    "MetaResult",
    "ModelDesign",
    "ModeratorTerm",
    "InteractionTerm",
    "MarginalMeans",
    "WildBootstrapResult",
    "wild_bootstrap",
    "ModelComparison",
    "model_comparison",
    "LocationScaleResult",
    "marginal_means",
    "WaldTest",
    "RobustResult",
    "aggregate",
    "robust",
    "build_design",
    "escalc",
    "fit",
    "compare",
    "variance_ci",
    "LikelihoodRatioTest",
    "level_order",
    "patient_therapist_ratio",
    "ptr",
    "r_to_z",
    "transf",
    "z_to_r",
]
