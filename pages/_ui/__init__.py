"""The dashboard's shared plumbing: session keys, state and links, the sidebar, loading and caching, rendering, tables, serving.

Page scripts import these; nothing here imports a page script (tests/unit/test_import_rules.py).
"""
