"""What to look for on each page's main figure: one short question a class checks on screen.

The projector view shows it beside the figure. Each is a question, never a finding, so it holds
whatever the data and the model's flags say; the page's own readings give the answer.
"""

from __future__ import annotations

LOOK_FOR: dict[str, str] = {
    "overview": "Is the prediction interval much wider than the confidence interval? Then "
    "true effects differ from study to study.",
    "forest": "Do most intervals cover the pooled diamond, or do some studies lie far from it?",
    "funnel": "Do the points scatter evenly on both sides, or is one bottom corner empty?",
    "ptr_curve": "Does the line fall as PTR grows, and does its band leave room for a flat line?",
    "sensitivity": "Does leaving out any one study move the estimate or its interval much?",
}


def look_for(figure: str) -> str:
    """The question to check on ``figure`` (a key of :data:`LOOK_FOR`)."""
    return LOOK_FOR[figure]
