"""dashboard/charts/: pure figure functions, checked on core results from real and demo data (no Streamlit)."""

from __future__ import annotations

import inspect
import json

import charts
import fmt
import numpy as np
import plotly.graph_objects as go
import polars as pl
import pytest
from _dash import axis_title, horizontal_lines, title, trace_names, values, vertical_lines

from servegen_core.characterize import arrivals, lengths, multimodal, prefix, rates, reasoning

from servegen_core.serve import hardware
from servegen_core.serve.costmodel import roofline
from servegen_core.serve.simulate import simulate
from servegen_core.serve.whatif import Slo, compare_trace
from servegen_core.generate.compose import compose, naive_spec, plan_workload, rate_curve
from servegen_core.sources.pool import load_pool
from servegen_core.spec import ServeGenSource, Span, WorkloadSpec
from servegen_core.characterize.summary import client_summary
from servegen_core.sources.traces import load_trace
from servegen_core.generate.validate import validate


def fig_json(fig) -> dict:
    """The figure as plain JSON, as the browser gets it."""
    return json.loads(fig.to_json())


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "cache"


@pytest.fixture(scope="module")
def r1(servegen_dir, cache):
    return load_pool(servegen_dir, "reason/deepseek-r1", cache_dir=cache)


@pytest.fixture(scope="module")
def azure(traces_dir):
    return load_trace(traces_dir / "AzureLLMInferenceTrace_conv.csv").trace


@pytest.fixture(scope="module")
def demo_chat(demo_dir, cache):
    return load_pool(demo_dir / "servegen", "language/demo-chat", cache_dir=cache)


# -- formatting -------------------------------------------------------------------------------


def test_fmt_time_counts_days_from_one():
    assert fmt.fmt_time(0) == "day 1 00:00"
    assert fmt.fmt_time(86400 + 3 * 3600 + 600) == "day 2 03:10"
    assert fmt.fmt_time(59.6) == "day 1 00:01"
    assert fmt.fmt_time(3725) == "day 1 01:02:05"


def test_time_unit_follows_the_span():
    assert fmt.time_unit(14 * 86400) == ("h", 3600.0)
    assert fmt.time_unit(3600) == ("min", 60.0)
    assert fmt.time_unit(90) == ("s", 1.0)


# -- rates ------------------------------------------------------------------------------------


def test_rate_over_time_plots_every_bin_in_hours(m_large):
    series = rates.rate_series(m_large, resolution_s=3600).frame
    fig = charts.rate_over_time(series, resolution_s=3600)
    data = fig.data[0]
    assert len(data.x) == series.height == 14 * 24
    np.testing.assert_allclose(data.x, series["start_s"].to_numpy() / 3600)
    np.testing.assert_allclose(data.y, series["rate_rps"].to_numpy())
    assert fig.layout.yaxis.title.text == "rate (requests/s)"
    assert fig.layout.xaxis.title.text == "time since source start (h)"
    assert fig.layout.xaxis.dtick == 24  # a 14-day span is ticked by day
    assert "1 h bins" in fig.layout.title.text
    assert "req/s" in data.hovertemplate


def test_top_clients_lists_the_busiest_first(m_large):
    shares = rates.client_shares(m_large).frame
    fig = charts.top_clients(shares, k=10)
    bar = fig.data[0]
    assert list(bar.y) == [f"client {c}" for c in shares["client_id"].head(10)]
    np.testing.assert_allclose(bar.x, shares["share"].head(10).to_numpy() * 100)
    assert list(bar.x) == sorted(bar.x, reverse=True)
    assert fig.layout.xaxis.title.text == "share of requests (%)"


def test_stacked_rate_has_one_trace_per_group(m_large):
    series = rates.top_k_series(m_large, 5, resolution_s=3600).frame
    fig = charts.stacked_rate(series, resolution_s=3600)
    assert len(fig.data) == 6
    assert trace_names(fig_json(fig))[-1] == "other clients"
    assert {t.stackgroup for t in fig.data} == {"rate"}
    # Stacked, the traces add up to the aggregate rate.
    total = np.sum([t.y for t in fig.data], axis=0)
    np.testing.assert_allclose(total, rates.rate_series(m_large, resolution_s=3600).frame["rate_rps"].to_numpy(), rtol=1e-9)
    assert "top 5 stacked" in fig.layout.title.text


def test_hour_day_heatmap_is_days_by_24_hours(m_large):
    matrix = rates.hour_day_matrix(m_large).frame
    fig = charts.hour_day_heatmap(matrix)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (14, 24)
    first = matrix.filter((pl.col("day") == 3) & (pl.col("hour") == 17))["rate_rps"][0]
    assert z[3, 17] == pytest.approx(first)
    assert fig.layout.xaxis.title.text == "hour of day (source time, h)"
    assert fig.data[0].colorbar.title.text == "req/s"


def test_day_over_day_bars_and_change(m_large):
    frame = rates.day_over_day(m_large).frame
    fig = charts.day_over_day(frame)
    (bars,) = fig.data  # the change is written on the bars, not drawn on a second axis
    assert bars.type == "bar" and len(bars.x) == 14
    np.testing.assert_allclose(bars.y, frame["rate_rps"].to_numpy())
    assert "yaxis2" not in fig_json(fig)["layout"]
    assert bars.text[0] == ""  # no change on the first day
    change = frame["change_pct"].to_numpy()
    for label, pct in zip(bars.text[1:], change[1:], strict=True):
        # "+3 %" / "−16 %" (typographic minus), rounded to whole percent
        assert label.endswith(" %") and label[0] == ("+" if pct >= 0 else "\u2212")
        assert abs(float(label[1:-2]) - abs(pct)) <= 0.5
    assert fig.layout.yaxis.title.text == "mean rate (requests/s)"
    assert "change from the previous day, %" in fig.layout.xaxis.title.text


def test_day_over_day_on_two_days_labels_the_second(demo_chat):
    frame = rates.day_over_day(demo_chat).frame
    assert frame.height == 2
    fig = charts.day_over_day(frame)
    pct = frame["change_pct"][1]
    assert list(fig.data[0].text) == ["", f"{pct:+.0f} %".replace("-", "\u2212")]
    assert fig.data[0].textposition == "outside"


def test_lorenz_curve_runs_from_origin_to_all(m_large):
    curve = rates.lorenz(m_large).frame
    g = rates.gini(m_large)
    fig = charts.lorenz_curve(curve, gini=g.value)
    observed = fig.data[1]
    assert (observed.x[0], observed.y[0]) == (0, 0)
    assert observed.x[-1] == pytest.approx(100) and observed.y[-1] == pytest.approx(100)
    assert all(y <= x + 1e-9 for x, y in zip(observed.x, observed.y, strict=True))  # below the diagonal
    assert f"Gini {g.value:.2f}" in fig.layout.title.text


# -- burstiness -------------------------------------------------------------------------------


def test_cv_cdf_has_both_curves_and_the_poisson_line(m_large):
    cdf = arrivals.cv_cdf(m_large).frame
    fig = fig_json(charts.cv_cdf(cdf))
    assert len(fig["data"]) == 2
    assert trace_names(fig) == ["share of windows", "share of requests (rate-weighted)"]
    assert vertical_lines(fig) == [1.0]
    assert values(fig["data"][0], "y")[-1] == pytest.approx(1.0)
    assert values(fig["data"][1], "y")[-1] == pytest.approx(1.0)
    # CVs span more than a decade in m-large: log axis, with the label placed in log units.
    assert fig["layout"]["xaxis"]["type"] == "log"
    assert fig["layout"]["xaxis"]["minorloglabels"] == "complete"  # 0.5 reads "0.5", not "5"
    assert fig["layout"]["xaxis"]["exponentformat"] == "none"  # … nor "5×10⁻¹"
    label = [a for a in fig["layout"]["annotations"] if a["text"].startswith("CV = 1")]
    assert label and label[0]["x"] == 0.0


def test_cv_vs_rate_one_point_per_client_with_cv_1_line(m_large):
    from servegen_core.characterize.summary import client_summary

    summary = client_summary(m_large).frame.drop_nulls(["mean_rate_rps", "cv_rate_weighted"])
    fig = fig_json(charts.cv_vs_rate(summary, rate="mean_rate_rps", cv="cv_rate_weighted"))
    assert len(values(fig["data"][0], "x")) == summary.height
    assert horizontal_lines(fig) == [1.0]
    assert fig["layout"]["xaxis"]["type"] == "log" and fig["layout"]["yaxis"]["type"] == "log"


def test_pattern_shares_sum_to_100(m_large):
    frame = arrivals.pattern_shares(m_large).frame
    fig = charts.pattern_shares(frame)
    for bars in fig.data:
        assert sum(bars.y) == pytest.approx(100)
        assert list(bars.x) == frame["pattern"].to_list()


def test_interarrival_histogram_draws_every_fitted_family(m_large):
    client = rates.client_shares(m_large).frame["client_id"][0]
    start = int(m_large.windows.filter(pl.col("client_id") == client)["start_s"][0])
    hist = arrivals.interarrival_histogram(m_large, client, start, log_bins=True)
    fig = fig_json(charts.interarrival_histogram(hist.histogram, hist.densities, hist.fit.table, title="t", log_x=True))
    names = trace_names(fig)
    assert names[0] == "observed gaps"
    assert any(n.startswith("Recorded ") for n in names)
    for family in ("Gamma", "Weibull", "Exponential"):
        assert any(n.startswith(family) for n in names)
    # the fit picks by BIC and says so; the legend marks the family the fit chose, by that name
    assert hist.fit.criterion == "bic"
    assert sum("★ best BIC" in n for n in names) == 1 and not any("AIC" in n for n in names)
    (marked,) = [n for n in names if "★ best" in n]
    assert marked.startswith(hist.fit.best)
    by_aic = hist.fit.table.sort("aic")["family"][0]
    aic_fig = fig_json(charts.interarrival_histogram(hist.histogram, hist.densities, hist.fit.table, title="t", criterion="aic"))
    assert [n for n in trace_names(aic_fig) if "★ best AIC" in n][0].startswith(by_aic)
    assert fig["layout"]["xaxis"]["type"] == "log"
    assert axis_title(fig) == "inter-arrival time (s, log scale)"


# -- lengths ----------------------------------------------------------------------------------


def test_length_distribution_with_fits(m_large):
    pdf = lengths.length_pdf(m_large, "input_tokens").frame
    fit = lengths.fit_input_lengths(m_large)
    fig = fig_json(charts.length_distribution(pdf, field="input_tokens", curves=fit.curves, fits=fit.table))
    families = fit.curves["family"].unique().to_list()
    assert len(fig["data"]) == 2 + 2 * len(families)  # observed CDF + tail, and each family on both panels
    best = [n for n in trace_names(fig) if "★ best" in n]
    assert len(best) == 2 and best[0].startswith(fit.best.replace("_", " + "))
    assert fig["layout"]["xaxis"]["type"] == "log" and fig["layout"]["xaxis2"]["type"] == "log"
    assert fig["layout"]["yaxis2"]["type"] == "log"
    assert axis_title(fig) == "input tokens (tokens, log scale)"
    assert values(fig["data"][0], "y")[-1] == pytest.approx(1.0)


def test_percentile_bands_and_client_means(m_large):
    shift = lengths.length_shift(m_large, "output_tokens")
    fig = charts.percentile_bands(shift.windows, field="output_tokens")
    assert [t.name for t in fig.data] == ["p99", "p90", "p50", "mean"]
    assert len(fig.data[0].x) == shift.windows.height
    assert fig.layout.yaxis.type == "log"
    means = lengths.client_length_means(m_large, "input_tokens")
    fig = charts.client_means(means.frame, field="input_tokens")
    assert len(fig.data[0].x) == means.frame.height == len(m_large.client_ids) - len(m_large.clients_without_lengths)


def test_length_scatter_of_a_trace(azure):
    fig = charts.length_scatter(azure.head(500))
    assert len(fig.data[0].x) == 500
    assert fig.layout.xaxis.title.text == "input tokens (tokens, log scale)"
    assert fig.layout.yaxis.title.text == "output tokens (tokens, log scale)"


# -- multimodal and reasoning -----------------------------------------------------------------


def test_multimodal_charts(mm_image):
    shares = multimodal.modality_shares(mm_image)
    fig = charts.modality_share_histogram(shares.distribution, modalities=["text", "image"])
    assert [t.name for t in fig.data] == ["text tokens", "image tokens"]
    for bars in fig.data:
        assert sum(bars.y) == pytest.approx(100, abs=1e-6)
    counts = multimodal.image_count_distribution(mm_image)
    fig = charts.count_distribution(counts.frame, field=counts.field)
    assert list(fig.data[0].x) == counts.frame["count"].to_list()
    tpi = multimodal.tokens_per_image(mm_image)
    fig = charts.tokens_per_item(tpi.distribution, tpi.dominant)
    labelled = [a.text for a in fig.layout.annotations]
    assert labelled[0] == f"#1: {tpi.dominant['tokens_per_item'][0]:,.0f}"
    assert fig.layout.xaxis.type == "log"
    over = multimodal.modality_over_time(mm_image).frame
    fig = charts.modality_over_time(over, modalities=["text", "image"])
    stacked = np.sum([t.y for t in fig.data], axis=0)
    np.testing.assert_allclose(stacked, 100, atol=1e-6)


def test_reason_ratio_histogram_marks_both_modes(r1):
    ratio = reasoning.reason_ratio_distribution(r1)
    modes = reasoning.bimodality(r1, per_client=True)
    fig = fig_json(charts.reason_ratio_histogram(ratio.frame, modes.components, bin_width=1 / ratio.grid_denominator))
    mus = sorted(modes.components["mu"].to_list())
    assert sorted(vertical_lines(fig)) == pytest.approx(mus)
    assert sum(n.startswith("mode ") for n in trace_names(fig)) == 2
    fig = charts.bimodality_by_client(modes.per_client, threshold=modes.threshold)
    assert len(fig.layout.yaxis.categoryarray) == modes.per_client.height
    tokens = reasoning.reasoning_tokens(r1)
    fig = charts.reasoning_vs_answer(tokens.histogram)
    assert [t.name for t in fig.data] == ["output tokens", "reasoning tokens", "answer tokens"]


# -- compose and preview ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def composed(demo_chat):
    spec = WorkloadSpec(source=ServeGenSource("demo", "language/demo-chat"), span=Span(start_s=36000, duration_s=3600))
    made = compose(spec, pool=demo_chat)
    return spec, made, validate(made)


def test_rate_plan_and_weights(composed, demo_chat):
    spec, made, _ = composed
    plan = plan_workload(spec, pool=demo_chat)
    fig = charts.rate_plan(rate_curve(plan))
    target = fig.data[0]
    # observed rate: a step per window, each window's recorded rate, with both sides of every edge drawn
    assert max(target.y) == pytest.approx(plan.targets["target_rps"].max())
    assert min(target.y) == pytest.approx(plan.targets["target_rps"].min())
    assert len(target.x) > 2 * plan.targets.height
    assert fig.layout.xaxis.title.text == "time since workload start (min)"
    fig = charts.weight_shares(plan.weights)
    assert sum(fig.data[1].y) == pytest.approx(100)


def test_preview_charts(composed, demo_chat):
    spec, made, report = composed
    fig = charts.achieved_vs_target(report.windows)
    assert sum(fig.data[0].y) == made.trace.height
    fig = fig_json(charts.cv_scatter(report.cv))
    assert len(values(fig["data"][1], "x")) == report.cv.height
    assert horizontal_lines(fig) == [1.0]
    naive = compose(naive_spec(spec), pool=demo_chat)
    frames = {"source": arrivals.cv_cdf(demo_chat.span(36000, 39600)).frame, "realistic": arrivals.cv_cdf(made.trace).frame, "naive": arrivals.cv_cdf(naive.trace).frame}
    fig = fig_json(charts.cdf_comparison(frames, x="cv", title="t", x_title="CV", vline=1.0))
    assert trace_names(fig) == ["source", "realistic", "naive"]
    assert vertical_lines(fig) == [1.0]
    assert title(fig) == "t"


def test_empty_figure_says_why():
    fig = charts.empty_figure("Nothing", "no requests in this span")
    assert fig.layout.annotations[0].text == "no requests in this span"
    assert fig.layout.title.text == "Nothing"


# -- every figure: a title, and a title on every axis it draws ------------------------------


def unlabelled_axes(fig: dict) -> list[str]:
    """Visible axes (those set in the layout and those a trace is drawn on) without a title."""
    layout = fig["layout"]
    axes = {k: v for k, v in layout.items() if k.startswith(("xaxis", "yaxis"))}
    for t in fig["data"]:
        axes.setdefault("xaxis" + t.get("xaxis", "x")[1:], {})
        axes.setdefault("yaxis" + t.get("yaxis", "y")[1:], {})
    return sorted(k for k, v in axes.items() if v.get("visible", True) and not (v.get("title") or {}).get("text"))


def figure_functions() -> set[str]:
    public = {
        name: fn
        for name, fn in inspect.getmembers(charts, inspect.isfunction)
        if fn.__module__.startswith(f"{charts.__name__}.") and not name.startswith("_")
    }
    # every public function says what it returns, so no figure function escapes the set below
    assert [n for n, fn in public.items() if inspect.signature(fn).return_annotation is inspect.Signature.empty] == []
    return {name for name, fn in public.items() if inspect.signature(fn).return_annotation in ("go.Figure", go.Figure)}


def test_every_figure_has_a_title_and_axis_titles(demo_dir, demo_chat, composed, cache, traces_dir):
    vl = load_pool(demo_dir / "servegen", "multimodal/demo-vl", cache_dir=cache)
    r1 = load_pool(demo_dir / "servegen", "reason/demo-r1", cache_dir=cache)
    spec, made, report = composed
    plan = plan_workload(spec, pool=demo_chat)
    fit = lengths.fit_input_lengths(demo_chat)
    busy = demo_chat.windows.filter(pl.col("rate_rps") > 0).row(0, named=True)
    hist = arrivals.interarrival_histogram(demo_chat, busy["client_id"], busy["start_s"])
    modes = reasoning.bimodality(r1, per_client=True)
    tpi = multimodal.tokens_per_image(vl)
    summary = client_summary(demo_chat).frame.drop_nulls(["mean_rate_rps", "cv_rate_weighted"])
    mooncake = load_trace(traces_dir / "mooncake_synthetic_trace.jsonl").trace
    lru = prefix.lru_hit_ratio(mooncake)
    sess = prefix.sessions(mooncake)
    kv_model = next(iter(hardware.MODELS))
    builders = {
        "achieved_vs_target": lambda: charts.achieved_vs_target(report.windows),
        "bimodality_by_client": lambda: charts.bimodality_by_client(modes.per_client, threshold=modes.threshold),
        "bimodality_by_client (tokens)": lambda: charts.bimodality_by_client(
            reasoning.bimodality(r1, per_client=True, on="reasoning_tokens").per_client, threshold=modes.threshold, on="reasoning_tokens"
        ),
        "cdf_comparison": lambda: charts.cdf_comparison({"source": arrivals.cv_cdf(demo_chat).frame}, x="cv", title="t", x_title="CV"),
        "client_activity": lambda: charts.client_activity(rates.top_k_series(demo_chat.select_clients(["1", "2", "3"]), 3).frame, resolution_s=600, span=(3600, 7200)),
        "client_means": lambda: charts.client_means(lengths.client_length_means(demo_chat, "input_tokens").frame, field="input_tokens"),
        "count_distribution": lambda: charts.count_distribution(multimodal.image_count_distribution(vl).frame),
        "cv_cdf": lambda: charts.cv_cdf(arrivals.cv_cdf(demo_chat).frame),
        "cv_scatter": lambda: charts.cv_scatter(report.cv),
        "cv_vs_rate": lambda: charts.cv_vs_rate(summary, rate="mean_rate_rps", cv="cv_rate_weighted"),
        "day_over_day": lambda: charts.day_over_day(rates.day_over_day(demo_chat).frame),
        "empty_figure": lambda: charts.empty_figure("Nothing", "no requests in this span"),
        "hour_day_heatmap": lambda: charts.hour_day_heatmap(rates.hour_day_matrix(demo_chat).frame),
        "interarrival_histogram": lambda: charts.interarrival_histogram(hist.histogram, hist.densities, hist.fit.table, title="t"),
        "interarrival_histogram (log)": lambda: charts.interarrival_histogram(hist.histogram, hist.densities, title="t", log_x=True),
        "length_distribution": lambda: charts.length_distribution(
            lengths.length_pdf(demo_chat, "input_tokens").frame, field="input_tokens", curves=fit.curves, fits=fit.table
        ),
        "length_scatter": lambda: charts.length_scatter(made.trace.head(200)),
        "lorenz_curve": lambda: charts.lorenz_curve(rates.lorenz(demo_chat).frame),
        "modality_over_time": lambda: charts.modality_over_time(multimodal.modality_over_time(vl).frame),
        "modality_share_histogram": lambda: charts.modality_share_histogram(multimodal.modality_shares(vl).distribution),
        "pattern_shares": lambda: charts.pattern_shares(arrivals.pattern_shares(demo_chat).frame),
        "percentile_bands": lambda: charts.percentile_bands(lengths.length_shift(demo_chat, "output_tokens").windows, field="output_tokens"),
        "fleet_timeline": lambda: charts.fleet_timeline(
            simulate(made.trace.head(3000), roofline("llama-3-8b", "a10g"), replicas=2).fleet_timeline(), replicas=2, bin_s=10
        ),
        "provisioning_curves": lambda: charts.provisioning_curves(
            compare_trace(made.trace.head(3000), Slo(ttft_p99_s=2.0), roofline("llama-3-8b", "a10g")).curves, slo_s=2.0
        ),
        "rate_over_time": lambda: charts.rate_over_time(rates.rate_series(demo_chat).frame, resolution_s=600),
        "rate_plan": lambda: charts.rate_plan(rate_curve(plan)),
        "reason_ratio_histogram": lambda: charts.reason_ratio_histogram(reasoning.reason_ratio_distribution(r1).frame, modes.components),
        "reasoning_vs_answer": lambda: charts.reasoning_vs_answer(reasoning.reasoning_tokens(r1).histogram),
        "stacked_rate": lambda: charts.stacked_rate(rates.top_k_series(demo_chat, 5).frame, resolution_s=600),
        "tokens_per_item": lambda: charts.tokens_per_item(tpi.distribution, tpi.dominant),
        "top_clients": lambda: charts.top_clients(rates.client_shares(demo_chat).frame),
        "weight_shares": lambda: charts.weight_shares(plan.weights),
        "lru_hit_ratio_curve": lambda: charts.lru_hit_ratio_curve(lru.frame, max_hit_ratio=lru.max_hit_ratio, block_tokens=lru.block_tokens),
        "lru_hit_ratio_curve (GB)": lambda: charts.lru_hit_ratio_curve(
            lru.frame, max_hit_ratio=lru.max_hit_ratio, block_tokens=lru.block_tokens,
            kv_bytes_per_token=hardware.MODELS[kv_model].kv_bytes_per_token, model=kv_model,
        ),
        "lru_comparison": lambda: charts.lru_comparison(
            prefix.compare_reuse(mooncake, mooncake.with_columns(hash_ids=mooncake["hash_ids"].list.head(2))).frame,
            block_tokens=512, tolerance=prefix.LRU_TOLERANCE,
        ),
        "prefix_depth_histogram": lambda: charts.prefix_depth_histogram(prefix.prefix_depth(mooncake).histogram),
        "top_prefixes": lambda: charts.top_prefixes(prefix.top_prefixes(mooncake, k=15).frame),
        "client_reuse": lambda: charts.client_reuse(
            prefix.block_reuse(mooncake.with_columns(client_id=(mooncake["input_tokens"] % 3).cast(str))).per_client
        ),
        "session_turns": lambda: charts.session_turns(sess.turn_counts),
        "inter_turn_gaps": lambda: charts.inter_turn_gaps(sess.turns),
        "context_growth": lambda: charts.context_growth(sess.turns),
    }
    # every public figure function of the charts package is drawn here (a new one must be added)
    assert {name.split(" ")[0] for name in builders} == figure_functions()
    for name, build in builders.items():
        fig = fig_json(build())
        assert title(fig), name
        assert fig["data"] or name == "empty_figure", name
        assert unlabelled_axes(fig) == [], name
