"""The model: design matrices, likelihoods and estimators, fitting, the result object, model-based and cluster-robust inference.

May import the base modules and data; never wording, analyses, figures, teaching or hand-over.
"""
