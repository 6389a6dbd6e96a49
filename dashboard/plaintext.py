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
  (``:``) and math (``$``); a leading list marker is escaped too and control characters become
  spaces. Streamlit also turns bare URLs, ``www.`` names and e-mail addresses of the text into
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


def md(value: object) -> str:
    """``value`` as Markdown that renders as exactly its text (on one line; autolink triggers get a word joiner)."""
    text = _AUTOLINK.sub(lambda m: m.group(1) + WORD_JOINER, _CONTROL.sub(" ", str(value)))
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _LIST_START.sub(lambda m: m.group(1) + (r"\-" if m.group(2) == "-" else m.group(2) + "\\"), text)


def svg(value: object) -> str:
    """``value`` as Plotly text that renders as exactly its text (no tags, no links)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_series(series: pl.Series) -> pl.Series:
    """:func:`svg` applied to every value of a column (cast to text; nulls stay null)."""
    s = series.cast(pl.String)
    return s.str.replace_all("&", "&amp;", literal=True).str.replace_all("<", "&lt;", literal=True).str.replace_all(">", "&gt;", literal=True)
