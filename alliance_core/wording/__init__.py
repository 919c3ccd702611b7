"""Words for people: plain-language readings of a fitted model and user text made safe inside figures.

May import the base modules, data and the model; never analyses, figures, teaching or hand-over.
"""
