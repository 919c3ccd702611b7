"""Layouts that follow the browser's width: a page sends both and CSS shows the one that fits.

Streamlit does not tell the server the browser's width, so a figure that needs a different
layout on a phone is drawn in both layouts, each in a keyed container (Streamlit gives it the
class ``st-key-<key>``), and a media query hides the one that does not fit.
"""

WIDE_KEY = "forest-wide"
COMPACT_KEY = "forest-compact"
NARROW_MAX_PX = 700  # below this viewport width the forest plot's text columns would collide

# Static CSS only: no user text reaches this markup.
FOREST_CSS = f"""<style>
@media (max-width: {NARROW_MAX_PX}px) {{ .st-key-{WIDE_KEY} {{ display: none; }} }}
@media (min-width: {NARROW_MAX_PX + 1}px) {{ .st-key-{COMPACT_KEY} {{ display: none; }} }}
</style>"""
