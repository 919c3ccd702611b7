"""Reading data: column roles, effect sizes (escalc), the bundled datasets, uploads and their checks.

Imports only the base modules (errors, formatting); never the model, analyses, figures or hand-over.
"""
