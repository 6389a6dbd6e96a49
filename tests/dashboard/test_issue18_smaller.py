"""Issue 18, point 11: the smaller items (fit wording and warnings, the gap histogram's axis,
over/under-provisioning words, "busiest of 1 clients", the loader's notes said once)."""

from __future__ import annotations

import json
import math
import re

import charts
import fmt
import numpy as np
import polars as pl
from _dash import Dashboard, plain, values

from servegen_core.characterize import arrivals, lengths, rates
from servegen_core.characterize.lengths import MAX_TAIL_INDEX


def test_the_gap_histogram_s_log_axis_spans_the_gaps_drawn(m_large):
    client = rates.client_shares(m_large).frame["client_id"][0]
    start = int(m_large.windows.filter(pl.col("client_id") == client)["start_s"][0])
    hist = arrivals.interarrival_histogram(m_large, client, start, log_bins=True)
    fig = json.loads(charts.interarrival_histogram(hist.histogram, hist.densities, hist.fit.table, title="t", log_x=True).to_json())
    h = hist.histogram
    counts = h["count"].to_numpy()
    left, right = h["left_s"].to_numpy(), h["right_s"].to_numpy()
    assert left[left > 0].min() < 1e-9  # the case of the issue: sampled gaps down to ~1e-21 s
    cum = np.cumsum(counts) / counts.sum()
    first = int(np.searchsorted(cum, charts.arrivals.GAP_AXIS_LOW_SHARE))
    low = max(left[first] if left[first] > 0 else right[first] / 10, charts.arrivals.GAP_AXIS_MIN_S)
    high = right[int(np.flatnonzero(counts > 0)[-1])]
    lo, hi = fig["layout"]["xaxis"]["range"]
    assert lo == math.log10(low) - 0.25 and hi == math.log10(high) + 0.25
    assert lo >= math.log10(charts.arrivals.GAP_AXIS_MIN_S) - 0.25
    hidden = counts[right <= 10**lo].sum() / counts.sum()
    notes = [a["text"] for a in fig["layout"].get("annotations", [])]
    if hidden > 0:  # the gaps left of the axis are counted on the chart
        assert f"{hidden:.1%} of the gaps are shorter than the axis shows" in notes, notes


def test_length_fits_name_the_criterion_and_warn_at_a_bound(servegen_dir, m_large):
    d = Dashboard().servegen("language/m-large").open("lengths")
    d.check()
    captions = d.captions()
    for field, fitter in (("input_tokens", lengths.fit_input_lengths), ("output_tokens", lengths.fit_output_lengths)):
        fit = fitter(m_large, field=field)
        best = fit.table.filter(pl.col("best")).row(0, named=True)
        closest = fit.table.sort("ks").row(0, named=True)
        (text,) = [c for c in captions if c.startswith(f"Best fit for {fmt.field_label(field)} by AIC")]
        assert "by AIC" in text
        assert ("By KS distance" in text) == (closest["family"] != best["family"])
    per_client = lengths.client_length_fits(m_large, "input_tokens", k=10).frame
    at_bound = [c for c, p in per_client.select("client_id", "params").iter_rows() if p and (m := re.search(r"alpha=([0-9.eE+-]+)", p)) and float(m.group(1)) >= MAX_TAIL_INDEX - 1e-9]
    warned = [plain(w.value) for w in d.at.warning if "Per-client fits to read with care" in w.value]
    if at_bound or (per_client["ks"] > 0.2).any():
        assert warned, "a per-client fit at the bound or with a large KS distance is not flagged"
    if at_bound:
        assert any(", ".join(at_bound) in w for w in warned)
    tables = [f.value for f in d.at.dataframe if "best" in f.value.columns]  # input, then output
    assert len(tables) == 2
    assert "ks_exponential" not in tables[0].columns  # no column of "None" for input lengths
    assert "ks_exponential" in tables[1].columns


def test_one_client_is_not_the_5_busiest_of_1(traces_dir):
    d = Dashboard().trace(traces_dir / "AzureLLMInferenceTrace_conv.csv")  # no client column: one client
    captions = d.captions()
    assert not any("busiest of 1 clients" in c for c in captions)
    assert any(c.startswith("The one client sends 100.0% of all requests") for c in captions), captions


def test_the_quantization_note_is_said_once(traces_dir):
    d = Dashboard().trace(traces_dir / "mooncake_synthetic_trace.jsonl")
    notes = [plain(c.value) for c in d.at.sidebar.caption]
    assert sum("quantization inflates measured burstiness" in n for n in notes) == 1, notes
    assert any(n.startswith("3,993 requests read from") for n in notes)
