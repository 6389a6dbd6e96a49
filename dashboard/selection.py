"""The client selection, kept by client id in ``st.session_state`` (never by table row).

One selection per session: a set of client ids, the source it was last changed on, and
(when it was taken as "all matching" a Clients-page filter) that filter and the span it was
ranked over. It survives filters, sorting, page switches and source switches; on another
source only the ids that source has are used (:func:`present`) and the others are named
(:func:`missing`).

Every change goes through :func:`replace`, :func:`add`, :func:`remove` or :func:`clear`,
which bump a version number; the Clients table is keyed on that version and on the ids it
shows, so a table never carries a row selection over to other rows
(:func:`merge_table_rows`).

The Clients page's filter becomes a spec client selection (:func:`filter_rule`), which the
Compose page carries into the spec when it was ranked over the workload's span
(:func:`carried_rule`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import streamlit as st

import navigation
from fmt import fmt_time
from servegen_core.errors import SpecError
from servegen_core.sources.pool import client_sort_key
from servegen_core.spec import ClientSelection

_KEY = "selection"
_VERSION = "selection_version"


@dataclass(frozen=True)
class Selection:
    """Selected client ids (in numeric id order) and where they were picked.

    ``source`` is the source of the last change; ``rule`` the Clients page's filter when the
    ids are exactly "all matching" it (``None`` once ids are added or removed by hand);
    ``start_s``/``end_s`` the span the filter ranked clients over.
    """

    source: object
    client_ids: tuple[str, ...]
    rule: ClientSelection | None = None
    start_s: float | None = None
    end_s: float | None = None


def _sorted(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({str(c) for c in ids}, key=client_sort_key))


def get() -> Selection | None:
    return st.session_state.get(_KEY)


def ids() -> tuple[str, ...]:
    """Every selected id, whatever the source."""
    sel = get()
    return sel.client_ids if sel is not None else ()


def version() -> int:
    """Bumped on every change (keys the Clients table)."""
    return int(st.session_state.get(_VERSION, 0))


def _known(view) -> set[str]:
    return set(view.loaded.data.client_ids if view.is_pool else view.client_ids)


def present(view) -> tuple[str, ...]:
    """The selected ids the view's source has (span aside: a client idle in the span is kept)."""
    known = _known(view)
    return tuple(c for c in ids() if c in known)


def missing(view) -> tuple[str, ...]:
    """The selected ids the view's source does not have."""
    known = _known(view)
    return tuple(c for c in ids() if c not in known)


def _store(view, client_ids: Iterable[str], *, rule: ClientSelection | None = None) -> None:
    st.session_state[_KEY] = Selection(view.source, _sorted(client_ids), rule, view.start_s, view.end_s)
    st.session_state[_VERSION] = version() + 1


def replace(view, client_ids: Iterable[str], *, rule: ClientSelection | None = None) -> None:
    """The selection becomes ``client_ids`` (and the filter that chose them, if any)."""
    _store(view, client_ids, rule=rule)


def add(view, client_ids: Iterable[str]) -> None:
    """Union: the selection plus ``client_ids``."""
    _store(view, (*ids(), *client_ids))


def remove(view, client_ids: Iterable[str]) -> None:
    """Difference: the selection without ``client_ids``."""
    drop = {str(c) for c in client_ids}
    _store(view, (c for c in ids() if c not in drop))


def intersect(view, client_ids: Iterable[str]) -> None:
    """Intersection: keep only the selected ids among ``client_ids``."""
    keep = {str(c) for c in client_ids}
    _store(view, (c for c in ids() if c in keep))


def clear() -> None:
    st.session_state.pop(_KEY, None)
    st.session_state[_VERSION] = version() + 1


def table_key(view, shown: Sequence[str]) -> str:
    """Widget key of the Clients table: changes with the source, the rows shown and the selection version."""
    digest = abs(hash(tuple(shown))) % 10**10
    return f"cl_table_{view.source.id}_{digest}_{version()}"


def default_rows(shown: Sequence[str]) -> list[int]:
    """Row positions of the selected ids among ``shown`` (the table's initial row selection)."""
    chosen = set(ids())
    return [i for i, c in enumerate(shown) if c in chosen]


def merge_table_rows(view, shown: Sequence[str], rows: Iterable[int]) -> bool:
    """Fold a table's row selection into the selection by id; True when it changed it.

    ``rows`` are positions in ``shown`` (the ids the table was given, in its order). Ids
    not shown keep their state; shown ids are selected exactly when their row is.
    """
    picked = {shown[i] for i in rows if 0 <= i < len(shown)}
    shown_set = set(shown)
    current = set(ids())
    if (current & shown_set) == picked:
        return False
    new = (current - shown_set) | picked
    # the table already shows this state: keep its key (no version bump), so it is not redrawn
    st.session_state[_KEY] = Selection(view.source, _sorted(new), None, view.start_s, view.end_s)
    return True


def search(known: Sequence[str], text: str) -> tuple[list[str], list[str]]:
    """Ids in ``text`` (separated by commas, spaces or new lines): those ``known`` and those not."""
    tokens = [t for t in text.replace(",", " ").split() if t]
    have = set(known)
    found = [t for t in dict.fromkeys(tokens) if t in have]
    unknown = [t for t in dict.fromkeys(tokens) if t not in have]
    return found, unknown


# -- the Clients page's filter in a spec ---------------------------------------------------------


def filter_rule(ranges: Mapping[str, tuple[float | None, float | None]], top_k: int | None, by: str) -> ClientSelection | None:
    """The Clients page's filter as a spec client selection (``None`` without ranges or top-k)."""
    if not ranges and top_k is None:
        return None
    try:
        return ClientSelection(
            mode="filter", ranges=tuple((name, lo, hi) for name, (lo, hi) in ranges.items()), top_k=top_k, by=by
        )
    except SpecError:
        return None


def describe_rule(rule: ClientSelection) -> str:
    """A filter selection in words, e.g. ``request_share ≥ 0.01; top 5 by request_share``."""
    parts = []
    for name, lo, hi in rule.ranges:
        if lo is not None and hi is not None:
            parts.append(f"{lo:g} ≤ {name} ≤ {hi:g}")
        elif lo is not None:
            parts.append(f"{name} ≥ {lo:g}")
        elif hi is not None:
            parts.append(f"{name} ≤ {hi:g}")
    if rule.top_k is not None:
        parts.append(f"top {rule.top_k} by {rule.by}")
    return "; ".join(parts) or "no bounds"


def carried_rule(view, start_s: float, end_s: float) -> tuple[ClientSelection | None, str]:
    """The Clients page's filter for a workload spanning ``[start_s, end_s)``, or ``None``, and a caption.

    The filter goes into the spec (``clients.mode = "filter"``) only when it was ranked over
    the same span as the workload's, on ServeGen pool data: the spec evaluates it over the
    workload's span, so it then picks exactly the clients the Clients page showed. Otherwise
    the clients stay a fixed id list and the caption says why.
    """
    sel = get()
    if sel is None or sel.source != view.source:
        return None, ""
    if sel.rule is None:
        return None, "Rows picked by hand on the Clients page go into the spec as a list of client ids."
    rule = f"the Clients page's filter ({describe_rule(sel.rule)})"
    if not view.is_pool:
        return None, (
            f"Kept as a list of client ids: {rule} ranks the trace's own requests, while a spec ranks the client "
            "pool fitted to the trace, which can order the clients differently."
        )
    if sel.start_s is None or abs(sel.start_s - start_s) > 1e-6 or abs(sel.end_s - end_s) > 1e-6:
        return None, (
            f"Kept as a list of client ids: {rule} ranked the clients over {fmt_time(sel.start_s)} – "
            f"{fmt_time(sel.end_s)}, the workload spans {fmt_time(start_s)} – {fmt_time(end_s)}, and over another "
            "span the same filter can pick other clients. Set the sidebar's time span to the workload's span and "
            "use the matching clients again to carry the filter itself into the spec."
        )
    return sel.rule, f"The spec carries {rule}, evaluated over the workload's span (the same span the Clients page used)."


def open_compose_with_selection() -> None:
    """Switch to the Compose page with its client subset set to the selection."""
    st.session_state["cmp_mode"] = "selection"
    st.switch_page(navigation.page("compose").link)
