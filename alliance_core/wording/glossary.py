"""Plain-language definitions of every technical term and column code the dashboard shows.

One place for the words: metric help texts (on hover), the sidebar's moderator names and the
Methods page's glossary all read :data:`GLOSSARY` and :data:`COLUMN_NAMES`, so a term is
explained the same way wherever a student meets it.
"""

from __future__ import annotations

import re
from functools import cache

GLOSSARY: dict[str, str] = {
    "r": "The correlation between alliance and outcome in one study: 0 means no link, 1 a "
    "perfect one.",
    "Fisher's z": "The correlation r stretched by atanh so that its sampling error is the same "
    "size at every r (variance 1/(n − 3)); models are fitted on z and shown back as r.",
    "PTR": "Patient–therapist ratio: patients in a study divided by its therapists. PTR 1 "
    "means one therapist per patient; a high PTR means few therapists for many patients.",
    "BESD": "Binomial effect size display (Rosenthal & Rubin 1982): r shown as if 50 % + r/2 "
    "of patients with the stronger alliance improved against 50 % − r/2 with the weaker.",
    "ICC": "Intraclass correlation: the therapists' share of the variance, here of the "
    "alliance. 0.25 means a quarter of alliance differences lie between therapists.",
    "τ²": "Tau squared: the variance of the true effects between studies, beyond what "
    "sampling error explains (two-level model).",
    "σ²": "Sigma squared: a variance component of the three-level model, σ²_study between "
    "studies and σ²_es between effect sizes of the same study.",
    "I²": "The share of the variation in observed effects that is real heterogeneity rather "
    "than sampling error (0–100 %).",
    "QE": "Cochran's Q test of residual heterogeneity: it asks whether the effects vary more "
    "than sampling error allows, after the moderators.",
    "QM": "The omnibus test of the moderators: it asks whether all moderator coefficients "
    "together differ from zero.",
    "Confidence interval": "Where the average true effect plausibly lies, given the data and "
    "the model.",
    "Prediction interval": "Where the true effect of a new, similar study is expected to "
    "lie; wider than the confidence interval because true effects differ between studies.",
    "REML": "Restricted maximum likelihood, the usual way to estimate the variance "
    "components (metafor's default).",
    "Three-level model": "A model with effect sizes nested in studies: it lets several "
    "effect sizes of one study share their study's true effect.",
    "Meta-regression": "A meta-analysis in which the average effect depends on study "
    "characteristics (moderators) such as PTR.",
    "CHE": "Correlated and hierarchical effects: a working model in which effect sizes of one "
    "study have correlated sampling errors (correlation ρ) and share random effects.",
    "ρ": "Rho: the assumed correlation between the sampling errors of effect sizes from the "
    "same patients; rarely reported, so analysts try 0.6–0.8.",
    "CR2": "A cluster-robust standard error with a small-sample correction (bias-reduced "
    "linearisation): it stays valid when the working model is wrong.",
    "Satterthwaite df": "Degrees of freedom estimated for a robust test; below 4 its p-value "
    "is unreliable and the dashboard flags it.",
    "HTZ": "The Hotelling-T² test with small-sample correction: the cluster-robust test of "
    "several coefficients at once (a moderator with several levels).",
    "Knapp–Hartung": "A test that uses a t distribution and a rescaled standard error, which "
    "holds its error rate better with few studies.",
    "Between-therapist slope": "How much outcome differs between therapists whose patients "
    "on average report a stronger alliance.",
    "Within-therapist slope": "How much outcome differs between patients of the same "
    "therapist who report a stronger alliance than the therapist's other patients.",
}

# Column codes of the coding sheet and the names a reader sees.
COLUMN_NAMES: dict[str, str] = {
    "alliance_rater": "Alliance rater",
    "outcome_rater": "Outcome rater",
    "alliance_measure": "Alliance measure",
    "design": "Research design",
    "pd": "Personality disorder in the sample",
    "pd_share": "Personality disorder share",
    "n_therapists": "Therapists",
    "n": "Patients",
    "year": "Year",
    "PTR": "PTR (patients per therapist)",
}


def define(term: str) -> str:
    """The plain-language definition of ``term`` (a key of :data:`GLOSSARY`)."""
    return GLOSSARY[term]


def column_name(code: str) -> str:
    """The display name of a column code; a code without one (an upload's) is shown as is."""
    return COLUMN_NAMES.get(code, code)


def glossary_markdown() -> str:
    """The glossary as a Markdown list, terms in bold, alphabetical (case-insensitive)."""
    items = sorted(GLOSSARY.items(), key=lambda item: item[0].casefold())
    lines = [f"- **{term}**: {text}" for term, text in items]
    lines += [
        f"- **{name}** (`{code}`): a column of the coding sheet."
        for code, name in COLUMN_NAMES.items()
    ]
    return "\n".join(lines)


@cache
def _pattern(term: str) -> re.Pattern[str]:
    # A term as a whole word: "r" in "r = 0.29" but not in "r²" or "rater"; words of several
    # letters ("Meta-regression", "confidence interval") in any case, symbols and codes as written.
    flags = re.IGNORECASE if sum(c.islower() for c in term) > 2 else 0
    return re.compile(r"(?<![\w'’])" + re.escape(term) + r"(?![\w'’²])", flags)


def terms_in(text: str) -> list[str]:
    """The glossary terms and the column codes (those with an underscore: ``pd_share``) that
    ``text`` shows, in the glossary's order."""
    codes = [code for code in COLUMN_NAMES if "_" in code]
    text = text.replace("\\", "")  # Markdown escapes: "meta\\-regression" shows "meta-regression"
    return [term for term in [*GLOSSARY, *codes] if _pattern(term).search(text)]


def hover(text: str, *also: str) -> str | None:
    """The plain-language definitions of the terms ``text`` shows (and of the terms ``also``),
    as Markdown for a hover (``help=``); None when it shows none."""
    terms = dict.fromkeys([*terms_in(text), *also])
    lines = [
        f"**{term}**: {define(term)}"
        if term in GLOSSARY
        else f"**{term}**: {column_name(term)} (a column of the coding sheet)."
        for term in terms
    ]
    return "\n\n".join(lines) or None


def with_definitions(text: str, help: str | None = None, *also: str) -> str | None:
    """``help`` followed by the definitions of the terms ``text`` shows (and of ``also``): the
    hover of an element (a widget, a paragraph) that shows ``text``."""
    return "\n\n".join(part for part in (help, hover(text, *also)) if part) or None
