"""Interactions ("log_PTR:alliance_rater") in the reproduction scripts: the R formula names each
part of a ':' term by its R name, the Python script passes the term to ``ac.fit``, and both
scripts agree with the dashboard's results file (coefficients, tests, the typical-value
prediction and the marginal means of the categorical part).

The runs are built at the engine level (the sidebar choice of an interaction is another
change): the state's model refitted with the interaction added, as ``run_analysis`` would fit
it. One Rscript call runs both R scripts.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from alliance_core.handover import reproduce
from alliance_core.model.fitting import fit
from tests.r_reference import apply, needs_r
from tests.unit.reproduce_runs import assert_all_agree, run_batch, write_bundles
from tests.unit.reproduce_states import STATES, State, prepare

AWKWARD = next(s for s in STATES if s.name == "upload-awkward-names")
MOLLOY = State(
    "molloy-interaction", "molloy2014", {"test": "t", "moderators": ("meanage", "design")}
)


def with_interaction(state: State, numeric: str, categorical: str):
    """The state's run refitted with numeric:categorical added (main effects kept)."""
    p = prepare(state)
    res = p.run.result
    moderators = (*p.run.moderator_columns, f"{numeric}:{categorical}")
    refit = fit(
        p.run.data,
        moderators=list(moderators),
        reference={categorical: res.design.term(categorical).reference},
        method=res.method,
        cluster=res.cluster,
        test=res.test,
    )
    return replace(p, run=replace(p.run, result=refit, moderator_columns=moderators))


@pytest.fixture(scope="module")
def runs():
    return {
        "awkward-3L": with_interaction(AWKWARD, "log_PTR", 'Rater; "type"'),
        "molloy-2L-knha": with_interaction(MOLLOY, "meanage", "design"),
    }


def test_the_r_formula_names_each_part_of_an_interaction(runs):
    p = runs["awkward-3L"]
    files = reproduce.bundle_files(
        p.run, p.mapping, p.provenance, language="R", **p.bundle_options()
    )
    script = files["analysis.R"]
    names = reproduce.r_names(list(reproduce.ModelCode.of(p.run, p.mapping, True).columns))
    rater = names['Rater; "type"']
    assert f"mods = ~ log_PTR + {rater} + log_PTR:{rater}" in script
    assert "log_PTR:Rater" not in files["data.csv"].splitlines()[0]  # no ':' column in data.csv
    assert any(":" in term for term in p.run.result.design.term_labels)


@apply(needs_r("metafor"))
def test_r_scripts_with_interactions_agree(tmp_path, runs):
    names = write_bundles(tmp_path, "R", ((name, p, {}) for name, p in runs.items()))
    assert_all_agree(run_batch(tmp_path, "R", names, timeout=600), names)


def test_python_scripts_with_interactions_agree(tmp_path, runs):
    names = write_bundles(tmp_path, "Python", ((name, p, {}) for name, p in runs.items()))
    assert_all_agree(run_batch(tmp_path, "Python", names, timeout=600), names)
