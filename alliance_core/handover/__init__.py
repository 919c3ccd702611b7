"""Hand-over: what leaves the dashboard (results tables, CSV files, provenance, the report, the reproduction scripts).

The outermost layer: may import every other part of alliance_core; nothing in alliance_core imports it.
"""
