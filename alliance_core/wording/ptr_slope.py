"""The one statement of what a negative PTR slope does and does not show.

Overview, Moderators, the Simulator, the Data page and the lesson all quote
:data:`PTR_SLOPE_MEANING`, so no page can claim more than another. The reasons it gives are those
of the project's science notes: a therapist contribution predicts a negative slope (the
therapist share of observed alliance variance falls as each therapist treats more patients),
but range restriction alone (fewer therapists leave less alliance variance to follow) and
study features that travel with PTR give one too; the patient-level split of Baldwin, Wampold
& Imel (2007) tests the contribution directly.
"""

from __future__ import annotations

PTR_SLOPE_MEANING = (
    "A negative PTR slope (weaker alliance–outcome correlations in studies where each "
    "therapist treats more patients) is what a therapist contribution to the alliance "
    "predicts, but it does not prove one: fewer therapists also leave less alliance variance "
    "for outcome to follow, and PTR can travel with other study features (setting, design, "
    "who rates the alliance). Splitting patient-level alliance into a therapist part and a "
    "patient part tests the contribution directly."
)
PTR_SLOPE_HEADING = "What a negative PTR slope does and does not show"
