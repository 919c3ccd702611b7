"""Characters that break files or scripts downstream, cleaned where text enters or leaves.

Control characters in an uploaded cell do harm far from where they came in: R's ``read.csv``
turns a carriage return inside a quoted field into a line feed (the level no longer matches
and the R script stops), XML 1.0 (the Word report) cannot hold NUL, ESC or lone surrogates at
all, U+2028/2029 end a line in JavaScript and in some editors, and a lone surrogate cannot be
written as UTF-8. So:

* :func:`clean_upload_text` turns every run of such characters in an uploaded cell or column
  name into one space (the upload then names the cells it changed);
* :func:`xml_safe` replaces each character XML 1.0 forbids by U+FFFD (the replacement
  character) in a finished text, and :func:`xml_safe_copy` does so in every string of a
  frozen dataclass (a report), so that writing a file never fails on a character.
"""

from __future__ import annotations

import dataclasses
import re

# C0 controls (tab, line feed and carriage return included), DEL, C1 controls, the Unicode line
# and paragraph separators, lone surrogates and the two non-characters U+FFFE/U+FFFF.
UNSAFE_IN_UPLOADS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]+")
# What XML 1.0 forbids (https://www.w3.org/TR/xml/#charsets; tab, line feed and carriage
# return are allowed), and DEL and the C1 controls, which XML discourages and HTML parsers
# report as errors.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
REPLACEMENT = "\ufffd"


def has_unsafe_characters(text: str) -> bool:
    return UNSAFE_IN_UPLOADS.search(text) is not None


def clean_upload_text(text: str) -> str:
    """``text`` with every run of unsafe characters (see the module docstring) as one space."""
    return UNSAFE_IN_UPLOADS.sub(" ", text)


def xml_safe(text: str) -> str:
    """``text`` with every character XML 1.0 cannot hold replaced by U+FFFD."""
    return NOT_XML.sub(REPLACEMENT, text)


def xml_safe_copy(value):
    """``value`` with :func:`xml_safe` applied to every string inside it (strings, tuples,
    lists, dicts and frozen dataclasses are walked; bytes and numbers are kept)."""
    if isinstance(value, str):
        return xml_safe(value)
    if isinstance(value, tuple | list):
        return type(value)(xml_safe_copy(item) for item in value)
    if isinstance(value, dict):
        return {xml_safe_copy(key): xml_safe_copy(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            field.name: xml_safe_copy(getattr(value, field.name))
            for field in dataclasses.fields(value)
            if field.init
        }
        return dataclasses.replace(value, **changes)
    return value


def cleaned_json(value):
    """A parsed JSON value (a settings file, a profile in a link) with every string cleaned as
    an upload's cells are (:func:`clean_upload_text`): JSON escapes can spell lone surrogates
    and control characters that no page, file or script could carry, and levels named in it
    must match the cleaned levels of an upload."""
    if isinstance(value, str):
        return clean_upload_text(value)
    if isinstance(value, list):
        return [cleaned_json(item) for item in value]
    if isinstance(value, dict):
        return {cleaned_json(key): cleaned_json(item) for key, item in value.items()}
    return value
