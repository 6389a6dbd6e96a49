"""lengths.client_length_fits (per-client fits beside the aggregate) and traces' wall-clock start time."""

from __future__ import annotations

import datetime
from pathlib import Path

import polars as pl
import pytest

from servegen_core.characterize.lengths import client_length_fits, fit_input_lengths, fit_output_lengths
from servegen_core.sources.traces import load_trace


def test_each_client_gets_its_own_fit_busiest_first(deepseek_r1):
    fits = client_length_fits(deepseek_r1, "output_tokens", k=4).frame
    assert fits.height == 4
    # busiest first, by the pool's expected requests of clients that have length data
    busy = (
        deepseek_r1.windows.filter(~pl.col("client_id").is_in(list(deepseek_r1.clients_without_lengths)))
        .group_by("client_id")
        .agg((pl.col("rate_rps") * pl.col("duration_s")).sum().alias("n"))
        .sort("n", descending=True)
    )
    assert fits["client_id"].to_list() == busy["client_id"].head(4).to_list()
    for row in fits.iter_rows(named=True):
        own = fit_output_lengths(deepseek_r1.select_clients([row["client_id"]]), max_points=300)
        best = own.table.filter(pl.col("best")).row(0, named=True)
        expo = own.table.filter(pl.col("family") == "exponential").row(0, named=True)
        assert (row["best"], row["params"], row["ks"], row["ks_exponential"]) == (best["family"], best["params"], best["ks"], expo["ks"])


def test_input_fields_use_the_input_families_on_a_trace(traces_dir: Path):
    trace = load_trace(traces_dir / "mooncake_synthetic_trace.jsonl").trace
    fits = client_length_fits(trace, "input_tokens", k=3).frame
    assert fits.height == 1 and fits["client_id"][0] == "all"  # the trace has no client column
    whole = fit_input_lengths(trace, max_points=300)
    assert fits["best"][0] == whole.best and fits["ks_exponential"][0] is None


def test_k_must_be_positive(deepseek_r1):
    with pytest.raises(ValueError, match="k must be"):
        client_length_fits(deepseek_r1, "output_tokens", k=0)


def test_a_wall_clock_trace_keeps_its_start_time(traces_dir: Path):
    azure = load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv")
    first = (traces_dir / "AzureLLMInferenceTrace_conv.csv").read_text().splitlines()[1].split(",")[0]
    assert first == "2023-11-16 18:15:46.6805900"
    assert azure.start_time == datetime.datetime(2023, 11, 16, 18, 15, 46, 680590)
    assert azure.trace["timestamp_s"][0] == 0.0
    # relative times (Mooncake's milliseconds) have no wall clock
    assert load_trace(traces_dir / "mooncake_synthetic_trace.jsonl").start_time is None
