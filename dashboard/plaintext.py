"""User data shown as plain text: client ids, column names, file names, error messages.

Streamlit renders Markdown (links, images, ``:color[...]`` directives, ``$`` math) in
``st.markdown``/``st.caption``/``st.info``/``st.error``/..., in widget labels and in radio and
select-slider options; Plotly renders a subset of HTML (``<a href>``, ``<b>``, ``<br>``) in
titles, tick labels, legend entries and hover labels. Every string that comes from a file, an
upload or a text field goes through one of the two functions here before it reaches either,
so a client id such as ``[x](http://…)`` or ``<a href=…>`` shows literally:

- :func:`md` for Streamlit Markdown: every character that can open Markdown syntax is
  backslash-escaped (CommonMark renders an escaped character as itself): emphasis, code, links
  and images (``[ ] ( ) !``), HTML and entities (``< > &``), headings, tables, directives and
  URL/e-mail autolinks (``:``, ``@`` and the dot of ``www.``), math (``$``); a leading list
  marker is escaped too and control characters become spaces. Dots, commas, hyphens, slashes
  and quotes elsewhere stay as they are, so ``m-large.csv`` reads as written;
- :func:`svg` for Plotly text: ``&``, ``<`` and ``>`` become HTML entities (Plotly shows an
  entity as its character); :func:`svg_series` does the same to a Polars column.

Pure functions, no Streamlit import.
"""

from __future__ import annotations

import re

import polars as pl

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|<>$~:=^&@])")
_WWW_DOT = re.compile(r"(?i)(www)\.")
_LIST_START = re.compile(r"^(\s*)(-|\d+(?=[.)]))")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def md(value: object) -> str:
    """``value`` as Markdown that renders as exactly its text (on one line)."""
    text = _MD_SPECIAL.sub(r"\\\1", _CONTROL.sub(" ", str(value)))
    text = _WWW_DOT.sub(r"\1\\.", text)
    return _LIST_START.sub(lambda m: m.group(1) + (r"\-" if m.group(2) == "-" else m.group(2) + "\\"), text)


def svg(value: object) -> str:
    """``value`` as Plotly text that renders as exactly its text (no tags, no links)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_series(series: pl.Series) -> pl.Series:
    """:func:`svg` applied to every value of a column (cast to text; nulls stay null)."""
    s = series.cast(pl.String)
    return s.str.replace_all("&", "&amp;", literal=True).str.replace_all("<", "&lt;", literal=True).str.replace_all(">", "&gt;", literal=True)
