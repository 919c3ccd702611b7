"""Analyses built on a fit: the dashboard's settings and their run, publication bias, sensitivity, specification curve, subgroups, dependence.

May import the base modules, data, the model and wording; never figures, teaching or hand-over.
"""
