"""One rule for numbers and user text shown to people (pages, readings, reports).

p-values follow APA style (APA Publication Manual, 7th ed., 6.36): no leading zero, three
decimals, ``p < .001`` below that, never ``p = .000``; a p that rounds to 1 is ``p > .999``.
Coefficients get as many decimals as their standard error needs to show two significant
digits, so a raw-PTR slope of -0.0021 (SE 0.0009) is not printed as -0.002 (SE 0.001).

``escape_markdown`` turns any user-supplied text (file names, column names, category levels,
link parameters, settings values) into Markdown that shows exactly those characters: no link,
image, emphasis, colour directive, icon or formula can come from a user's text.
"""

from __future__ import annotations

import math
import re
import string

MINUS = "\u2212"  # typographic minus, as in published tables

# Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping them all
# also defeats Streamlit's own directives (``:red[...]``, ``:material/icon:``) and ``$`` maths,
# which all need a punctuation character.
_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\u2028\u2029]+")
# GitHub-flavoured Markdown also links bare URLs and e-mail addresses, and Streamlit's renderer
# finds them in the text after the escapes are resolved, so backslashes cannot stop it. An
# invisible word joiner after "http", "www", ... and before "@" breaks the pattern.
WORD_JOINER = "\u2060"
_AUTOLINK_STARTS = re.compile(r"(https?|ftp|www|mailto|xmpp)(?=[:.])", re.IGNORECASE)


def escape_markdown(text: object) -> str:
    """``text`` as Markdown that renders as the literal characters, on one line.

    Punctuation is backslash-escaped; URL schemes, "www." and "@" get an invisible word joiner
    (U+2060) so that no link is made from them.
    """
    flat = _LINE_BREAKS.sub(" ", str(text))
    flat = _AUTOLINK_STARTS.sub(lambda m: m.group(1) + WORD_JOINER, flat)
    flat = flat.replace("@", WORD_JOINER + "@")
    return _PUNCTUATION.sub(r"\\\1", flat)


def _finite(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def format_p(p: object, *, symbol: bool = True) -> str:
    """APA-style p: ``p = .021``, ``p < .001``, ``p > .999``; ``p = NA`` when not a number.

    ``symbol=False`` leaves out the leading "p " (``= .021``, ``< .001``) for table cells
    under a "p" heading.
    """
    value = _finite(p)
    if value is None:
        text = "= NA"
    elif value < 0.001:
        text = "< .001"
    elif value > 0.999:
        text = "> .999"
    else:
        text = "= " + f"{value:.3f}".removeprefix("0")
    return f"p {text}" if symbol else text


def format_p_cell(p: object) -> str:
    """p for a table column headed "p": ``.021``, ``< .001``, ``> .999``, ``NA``."""
    return format_p(p, symbol=False).removeprefix("= ")


def format_number(value: object, digits: int = 2, *, minus: str = MINUS) -> str:
    """A fixed-point number with ``digits`` decimals and a typographic minus; "NA" if missing."""
    number = _finite(value)
    if number is None:
        return "NA"
    text = f"{number:.{digits}f}"
    if text.startswith("-"):
        # -0.00 is 0.00: a sign on a number that rounds to zero says nothing.
        text = text[1:] if float(text) == 0 else minus + text[1:]
    return text


def decimals_for(se: object, minimum: int = 2, maximum: int = 6) -> int:
    """Decimals that show the standard error ``se`` with two significant digits."""
    number = _finite(se)
    if number is None or number <= 0:
        return minimum
    needed = 1 - math.floor(math.log10(number))
    return max(minimum, min(maximum, needed))


def format_coefficient(value: object, se: object, *, minimum: int = 2) -> tuple[str, str]:
    """(estimate, SE) as text with the same number of decimals, enough for the SE."""
    digits = decimals_for(se, minimum=minimum)
    return format_number(value, digits), format_number(se, digits)


def format_p_console(p: object) -> str:
    """p as metafor's console print shows it (four decimals, "<.0001", "NA"), for the
    ``summary()`` text of result objects that a metafor user compares line by line."""
    value = _finite(p)
    if value is None:
        return "NA"
    return "<.0001" if value < 1e-4 else f"{value:.4f}"
