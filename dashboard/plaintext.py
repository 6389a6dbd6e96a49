"""User data shown as plain text: client ids, column names, file names, error messages.

Streamlit renders Markdown (links, images, ``:color[...]`` directives, ``$`` math) in
``st.markdown``/``st.caption``/``st.info``/``st.error``/..., in widget labels and in radio and
select-slider options; Plotly renders a subset of HTML (``<a href>``, ``<b>``, ``<br>``) in
titles, tick labels, legend entries and hover labels. Every string that comes from a file, an
upload or a text field goes through one of the two functions here before it reaches either,
so a client id such as ``[x](http://…)`` or ``<a href=…>`` shows literally:

- :func:`md` for Streamlit Markdown: every character that can open Markdown syntax is
  backslash-escaped (CommonMark renders an escaped character as itself): emphasis, code, links
  and images (``[ ] ( ) !``), HTML and entities (``< > &``), headings, tables, directives
  (``:``) and math (``$``); a leading list marker is escaped too, control characters become
  spaces and invisible format characters (bidi overrides, U+2028) are shown as ``\\uXXXX``. Streamlit also turns bare URLs, ``www.`` names and e-mail addresses of the text into
  links after parsing (GitHub's autolink literals), which no escape prevents: an invisible word
  joiner (U+2060) goes after ``://`` 's colon, after ``www`` and after ``@``, so those never
  read as a link. Dots, commas, hyphens, slashes and quotes stay as they are, so
  ``m-large.csv`` reads as written;
- :func:`svg` for Plotly text: ``&``, ``<`` and ``>`` become HTML entities (Plotly shows an
  entity as its character); :func:`svg_series` does the same to a Polars column.

Pure functions, no Streamlit import.
"""

from __future__ import annotations

import re

import polars as pl

#: The invisible character that keeps a URL, ``www.`` name or e-mail address from becoming a link.
WORD_JOINER = "\u2060"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|<>$~:=^&@])")
_AUTOLINK = re.compile(r"(?i)(:(?=//)|www(?=\.)|@)")
_LIST_START = re.compile(r"^(\s*)(-|\d+(?=[.)]))")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Invisible format characters that reorder or split text (bidi overrides and isolates such as
#: U+202E, zero-width characters, the line and paragraph separators U+2028/U+2029, C1 controls):
#: shown escaped as ``\uXXXX``, so an id reads as it is stored, not reversed or split.
_INVISIBLE_CHARS = (
    "\u0080-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
)
_INVISIBLE = re.compile(f"[{_INVISIBLE_CHARS}]")


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group(0)):04x}"


def md(value: object) -> str:
    """``value`` as Markdown that renders as exactly its text (on one line; autolink triggers get a word joiner)."""
    text = _AUTOLINK.sub(lambda m: m.group(1) + WORD_JOINER, _CONTROL.sub(" ", _INVISIBLE.sub(_escaped, str(value))))
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _LIST_START.sub(lambda m: m.group(1) + (r"\-" if m.group(2) == "-" else m.group(2) + "\\"), text)


def svg(value: object) -> str:
    """``value`` as Plotly text that renders as exactly its text (no tags, no links)."""
    return _INVISIBLE.sub(_escaped, str(value)).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_series(series: pl.Series) -> pl.Series:
    """:func:`svg` applied to every value of a column (cast to text; nulls stay null)."""
    s = series.cast(pl.String)
    if s.str.contains(f"[{_INVISIBLE_CHARS}]").any():  # rare: escape each invisible character the column holds
        for ch in sorted(set(_INVISIBLE.findall("".join(s.filter(s.str.contains(f"[{_INVISIBLE_CHARS}]")).to_list())))):
            s = s.str.replace_all(ch, f"\\u{ord(ch):04x}", literal=True)
    return s.str.replace_all("&", "&amp;", literal=True).str.replace_all("<", "&lt;", literal=True).str.replace_all(">", "&gt;", literal=True)
