"""Compose-page widgets for the spec's ``prefix`` section (shared system prompts, multi-turn
sessions), and the Preview page's prefix reuse of the generated workload (:func:`preview_reuse`).

:func:`prefix_section` draws an expander "Prefix reuse and sessions" and returns the
:class:`~servegen_core.spec.PrefixSpec` its widgets set (None when prefix modelling is off).
The widgets edit the ``default`` profile; per-client profiles of a restored spec are kept.
A raw trace with ``hash_ids`` offers "Fit from this trace", which fills the widgets from
:func:`servegen_core.generate.sessions.fit_prefix` on the sidebar's view of the trace.

Widget keys start with ``cmp_px_``. Values are set before the widgets exist (a fit runs in the
button's callback; a restored spec's prefix is applied the first time the page sees it).
"""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

import charts
import core_calls
from plaintext import md
from servegen_core.characterize import prefix as characterize
from servegen_core.generate.compose import Workload
from servegen_core.generate.sessions import fit_prefix
from servegen_core.spec import MAX_PROMPTS, MAX_TURNS, PrefixProfile, PrefixSpec, Sessions, SystemPrompts, WorkloadSpec
from session import View, spec_source
from widgets import page

#: Session key of a fit's message (shown once).
_NOTE = "cmp_px_note"

#: Document-style prompts (the shared part is the whole input but ``unique_tokens``) vs a fixed length.
TOKENS_KINDS = {"fixed": "a fixed number of tokens", "input": "the whole input but its unique tokens (documents)"}


def profile_widgets(profile: PrefixProfile) -> dict[str, Any]:
    """Widget values that make :func:`prefix_section` build ``profile`` (the inverse of the widgets)."""
    sp, ss = profile.system_prompts, profile.sessions
    v: dict[str, Any] = {"cmp_px_on": True, "cmp_px_sp_on": sp is not None, "cmp_px_ss_on": ss is not None}
    if sp is not None:
        v.update(
            cmp_px_sp_count=int(sp.count), cmp_px_sp_share=float(sp.request_share), cmp_px_sp_zipf=float(sp.zipf_s),
            cmp_px_sp_tokens_kind="input" if isinstance(sp.tokens, str) else "fixed",
            cmp_px_sp_unique=int(sp.unique_tokens), cmp_px_sp_minq=float(sp.min_quantile),
            cmp_px_sp_repeat=float(sp.repeat_share), cmp_px_sp_lag=float(sp.repeat_lag),
        )
        if not isinstance(sp.tokens, str):
            v["cmp_px_sp_tokens"] = int(sp.tokens)
    if ss is not None:
        v.update(
            cmp_px_ss_kind=ss.turns_kind, cmp_px_ss_max=int(ss.max_turns),
            cmp_px_ss_think=float(ss.think_mean_s), cmp_px_ss_cv=float(ss.think_cv),
        )
        if ss.turns_kind == "geometric":
            v["cmp_px_ss_mean"] = float(ss.turns_mean)
        else:
            v["cmp_px_ss_pmf"] = format_pmf(ss.turns_pmf)
    return v


def format_pmf(pmf: tuple[tuple[int, float], ...]) -> str:
    """``((turns, probability), ...)`` as ``"1: 0.8, 2: 0.2"`` (probabilities written exactly)."""
    return ", ".join(f"{int(k)}: {float(p)!r}" for k, p in pmf)


def parse_pmf(text: str) -> tuple[tuple[int, float], ...]:
    """The pairs of :func:`format_pmf`'s text; ``ValueError`` naming the bad item."""
    pairs = []
    for i, item in enumerate(p for p in text.split(",") if p.strip()):
        parts = item.split(":")
        if len(parts) != 2:
            msg = f"turns pmf item {i + 1} ({item.strip()!r}): write turns: probability, e.g. 1: 0.8, 2: 0.2"
            raise ValueError(msg)
        try:
            k, p = int(parts[0].strip()), float(parts[1].strip())
        except ValueError:
            msg = f"turns pmf item {i + 1} ({item.strip()!r}): turns must be a whole number and the probability a number"
            raise ValueError(msg) from None
        pairs.append((k, p))
    if not pairs:
        msg = "turns pmf: give at least one turns: probability pair"
        raise ValueError(msg)
    return tuple(pairs)


def _set(values: dict[str, Any]) -> None:
    for key, value in values.items():
        st.session_state[key] = value


def _fit(view: View, block_size: int) -> None:
    """Button callback: fit the view's trace and set the widgets (before they are drawn)."""
    try:
        fitted = fit_prefix(view.data, block_size=int(block_size))
    except Exception as exc:  # noqa: BLE001 - shown as a message, as core_calls.run does
        st.session_state[_NOTE] = ("error", f"The prefix fit failed: {core_calls.error_text(exc)}")
        return
    _set(profile_widgets(fitted.default))
    st.session_state[_NOTE] = ("success", f"Fitted to {view.data.height:,} requests at {int(block_size):,} tokens per block.")


def _restore(template: WorkloadSpec | None) -> None:
    """Set the widgets from a restored spec's prefix section (or turn them off when it has
    none), once per restored spec."""
    if template is None or st.session_state.get("cmp_px_template") is template:  # each restore is a new object
        return
    st.session_state["cmp_px_template"] = template
    if template.prefix is None:
        st.session_state["cmp_px_on"] = False
    else:
        _set(profile_widgets(template.prefix.default))


def _seed(key: str, default: Any) -> str:
    if key not in st.session_state:
        st.session_state[key] = default
    return key


def prefix_section(view: View, template: WorkloadSpec | None) -> PrefixSpec | None:
    """The expander's widgets and the ``prefix`` section they set (None: not modelled).

    ``template`` is a restored spec for this source (its prefix section fills the widgets
    once; its per-client profiles are kept). A SpecError is shown and stops the page.
    """
    _restore(template)
    kept = template.prefix.clients if template is not None and template.prefix is not None else ()
    sp_default, ss_default = SystemPrompts(), Sessions()
    can_fit = not view.is_pool and view.has("hash_ids")
    with st.expander("Prefix reuse and sessions", expanded=bool(st.session_state.get("cmp_px_on"))):
        on = st.toggle("Model shared prefixes and multi-turn sessions", persist_state="session", key=_seed("cmp_px_on", False))
        st.caption(
            "Adds the spec's prefix section: shared system prompts and multi-turn sessions, exported as hash_ids "
            "blocks and AIPerf sessions. The defaults are assumptions, not measurements: ServeGen pool data carry "
            "no prefix information. Fit them from a request trace with hash_ids (e.g. a Mooncake trace) where you have one."
        )
        if can_fit:
            f1, f2 = st.columns([1, 2])
            block = f1.number_input(
                "Tokens per block", min_value=1, max_value=1_000_000, step=1,
                persist_state="session", key=_seed("cmp_px_block", characterize.DEFAULT_BLOCK_TOKENS), help="block size of the trace's hash_ids (Mooncake: 512)",
            )
            f2.button(
                "Fit from this trace", key="cmp_px_fit", on_click=_fit, args=(view, int(block)),
                help="Measure prompt sharing and sessions of the trace in the sidebar's span (servegen_core.generate.sessions.fit_prefix).",
            )
        note = st.session_state.pop(_NOTE, None)
        if note is not None:
            (st.success if note[0] == "success" else st.error)(md(note[1]))
        if not on:
            return None
        s1, s2 = st.columns(2)
        with s1:
            sp_on = st.checkbox("Shared system prompts", persist_state="session", key=_seed("cmp_px_sp_on", True))
            if sp_on:
                count = st.number_input("Distinct prompts", min_value=1, max_value=MAX_PROMPTS, step=1, persist_state="session", key=_seed("cmp_px_sp_count", sp_default.count))
                share = st.number_input(
                    "Share of requests using one", min_value=0.0, max_value=1.0, step=0.05, format="%.4f",
                    persist_state="session", key=_seed("cmp_px_sp_share", float(sp_default.request_share)),
                )
                tokens_kind = st.radio(
                    "Prompt length", list(TOKENS_KINDS), format_func=TOKENS_KINDS.get, horizontal=True,
                    persist_state="session", key=_seed("cmp_px_sp_tokens_kind", "fixed"),
                )
                if tokens_kind == "fixed":
                    tokens: int | str = int(st.number_input(
                        "Prompt tokens", min_value=1, max_value=10_000_000, step=100, persist_state="session", key=_seed("cmp_px_sp_tokens", int(sp_default.tokens)),
                    ))
                else:
                    tokens = "input"
                unique = st.number_input(
                    "Unique tokens after the prompt (at least)", min_value=0, max_value=10_000_000, step=1,
                    persist_state="session", key=_seed("cmp_px_sp_unique", sp_default.unique_tokens),
                )
                zipf = st.number_input(
                    "Prompt popularity (Zipf exponent)", min_value=0.0, step=0.1, format="%.4f", persist_state="session", key=_seed("cmp_px_sp_zipf", float(sp_default.zipf_s)),
                )
                minq = st.number_input(
                    "Lowest input quantile of prompted requests", min_value=0.0, max_value=1.0, step=0.05, format="%.4f",
                    persist_state="session", key=_seed("cmp_px_sp_minq", float(sp_default.min_quantile)),
                )
                repeat = st.number_input(
                    "Share repeating a recent prompt", min_value=0.0, max_value=1.0, step=0.05, format="%.4f",
                    persist_state="session", key=_seed("cmp_px_sp_repeat", float(sp_default.repeat_share)),
                )
                lag = st.number_input(
                    "Recent: within this many requests", min_value=1.0, step=1.0, persist_state="session", key=_seed("cmp_px_sp_lag", float(sp_default.repeat_lag)),
                )
        with s2:
            ss_on = st.checkbox("Multi-turn sessions", persist_state="session", key=_seed("cmp_px_ss_on", True))
            if ss_on:
                kind = st.radio(
                    "Turns per session", ["geometric", "pmf"], horizontal=True, persist_state="session", key=_seed("cmp_px_ss_kind", ss_default.turns_kind),
                    format_func={"geometric": "geometric (mean)", "pmf": "table (turns: probability)"}.get,
                )
                if kind == "geometric":
                    mean = st.number_input("Mean turns", min_value=1.0, step=0.1, format="%.4f", persist_state="session", key=_seed("cmp_px_ss_mean", float(ss_default.turns_mean)))
                    top = st.number_input("Most turns", min_value=1, max_value=MAX_TURNS, step=1, persist_state="session", key=_seed("cmp_px_ss_max", ss_default.max_turns))
                else:
                    pmf_text = st.text_input("Turns pmf", persist_state="session", key=_seed("cmp_px_ss_pmf", "1: 0.5, 2: 0.3, 3: 0.2"), help="turns: probability pairs, comma-separated")
                think = st.number_input(
                    "Think time, mean (s)", min_value=0.001, step=10.0, persist_state="session", key=_seed("cmp_px_ss_think", float(ss_default.think_mean_s)),
                )
                cv = st.number_input("Think time CV", min_value=0.001, step=0.1, format="%.4f", persist_state="session", key=_seed("cmp_px_ss_cv", float(ss_default.think_cv)))
        try:
            prompts = None
            if sp_on:
                prompts = SystemPrompts(
                    count=int(count), request_share=float(share), zipf_s=float(zipf), tokens=tokens, unique_tokens=int(unique),
                    min_quantile=float(minq), repeat_share=float(repeat), repeat_lag=float(lag),
                )
            sessions = None
            if ss_on:
                if kind == "geometric":
                    sessions = Sessions(turns_mean=float(mean), max_turns=int(top), think_mean_s=float(think), think_cv=float(cv))
                else:
                    sessions = Sessions(turns_kind="pmf", turns_pmf=parse_pmf(pmf_text), think_mean_s=float(think), think_cv=float(cv))
            section = PrefixSpec(default=PrefixProfile(system_prompts=prompts, sessions=sessions), clients=kept)
        except ValueError as exc:
            core_calls.show_error(exc)
            st.stop()
        if section.clients:
            st.caption(f"Per-client profiles of the restored spec are kept for {len(section.clients):,} client(s).")
        return section


def _source_part(trace: pl.DataFrame, start_s: float, end_s: float, clients: tuple[str, ...]) -> pl.DataFrame:
    """The source trace's requests in the spec's span ``[start_s, end_s)`` from the composed clients."""
    ts = pl.col("timestamp_s")
    return trace.filter((ts >= start_s) & (ts < end_s) & pl.col("client_id").is_in(list(clients)))


def _source_report(trace: pl.DataFrame, start_s: float, end_s: float, clients: tuple[str, ...], *, block_tokens: int):
    return characterize.prefix_report(_source_part(trace, start_s, end_s, clients), block_tokens=block_tokens)


def _comparison(trace: pl.DataFrame, generated: pl.DataFrame, start_s: float, end_s: float, clients: tuple[str, ...], *, block_tokens: int):
    return characterize.compare_reuse(_source_part(trace, start_s, end_s, clients), generated, block_tokens=block_tokens)


def preview_reuse(spec: WorkloadSpec, made: Workload, view: View) -> None:
    """Preview: the generated workload's block reuse and LRU prefix-cache curve (one
    :func:`servegen_core.characterize.prefix.prefix_report` call on ``made.trace``), when ``spec`` has a
    ``prefix`` section. When the sidebar shows the spec's source and it is a trace with
    ``hash_ids``, the source's reuse over the same span and clients is shown beside it."""
    if spec.prefix is None:
        return
    st.subheader("Prefix reuse of the generated workload")
    block = int(st.number_input(
        "Tokens per block", min_value=1, max_value=1_000_000, step=1, persist_state="session", key=_seed("pv_px_block", characterize.DEFAULT_BLOCK_TOKENS),
        help="Block ids are cut from the workload's prompt segments at this many tokens per block (Mooncake and AIPerf: 512).",
    ))
    report = core_calls.run(
        characterize.prefix_report, made.trace, key=(spec, "prefix_report", block), block_tokens=block,
        spinner="Prefix reuse of the workload…",
    )
    if not core_calls.usable(report, what="prefix reuse"):
        return
    source, comparison = None, None
    if not view.is_pool and view.has("hash_ids") and spec_source(view)[0] == spec.source:
        end = spec.span.start_s + made.plan.span_duration_s
        source = core_calls.run(
            _source_report, view.loaded.data, spec.span.start_s, end, tuple(made.clients),
            key=(spec, "source_prefix_report", block), block_tokens=block, spinner="Prefix reuse of the source…",
        )
        source = source if source is not None and source.reuse.ok else None
        comparison = core_calls.run(
            _comparison, view.loaded.data, made.trace, spec.span.start_s, end, tuple(made.clients),
            key=(spec, "prefix_compare", block), block_tokens=block, spinner="LRU curves of source and workload…",
        )
    reuse, curve = report.reuse, report.lru
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Block reuse", f"{reuse.reuse_ratio:.1%}", help="Blocks whose id occurred earlier in the workload.")
    c2.metric("Block accesses", f"{reuse.blocks:,}", help=f"{reuse.unique_blocks:,} distinct block ids")
    c3.metric("Requests with a shared prefix", f"{report.depth.share_with_prefix:.1%}" if report.depth.ok else "n/a")
    if source is not None:
        c4.metric(
            "Source block reuse (same span and clients)", f"{source.reuse.reuse_ratio:.1%}",
            help="The source trace's own hash_ids over the spec's span, composed clients only.",
        )
    if comparison is not None and core_calls.usable(comparison, what="the source vs generated LRU curves"):
        page.plot(
            charts.lru_comparison(comparison.frame, block_tokens=comparison.block_tokens, tolerance=comparison.lru_tolerance),
            comparison.frame, key="pv_lru_compare",
        )
        st.caption(
            f"Cache sizes from {comparison.min_capacity:,} blocks (the source's hit ratio reaches a tenth of its unbounded value) "
            f"to {comparison.flat_capacity:,} (its curve has flattened); {int(comparison.frame['passed'].sum())} of "
            f"{comparison.frame.height} sizes within ±{comparison.lru_tolerance:.0%}; block reuse generated / source "
            f"{comparison.reuse_ratio:.3f} (the validate checks prefix_block_reuse and prefix_lru_curve)."
        )
    if core_calls.usable(curve, what="the LRU hit-ratio curve"):
        page.plot(
            charts.lru_hit_ratio_curve(curve.frame, max_hit_ratio=curve.max_hit_ratio, block_tokens=curve.block_tokens),
            curve.frame, key="pv_lru",
        )
        text = (
            f"An LRU prefix cache of {curve.saturation_blocks:,} blocks ({curve.saturation_blocks * curve.block_tokens:,} tokens) "
            f"or more hits {curve.max_hit_ratio:.1%} of the workload's {curve.accesses:,} block accesses"
        )
        if source is not None and source.lru.ok:
            text += f"; on the source trace (same span and clients) {source.lru.max_hit_ratio:.1%}"
        st.caption(text + ". The Prefix reuse page draws the source's curve.")
