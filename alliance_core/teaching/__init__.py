"""Teaching: simulated literatures, the Simulator's engine and the patient-level model behind the PTR argument.

May import everything below it (base, data, model, wording, analyses, figures); never hand-over.
"""
