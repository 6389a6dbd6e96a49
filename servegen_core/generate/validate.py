"""Compare a composed workload with its spec and its source: ``validate(workload, spec)``.

The report's ``checks`` table has one row per check (``name, value, target, low, high,
passed, n, detail``) ready for a dashboard; the detail tables behind each check are kept on
the report. Checks:

``total_requests``
    generated requests / the rate function's integral over the span; passes within 1 %.
``rate_tracking``
    ``sum_k |generated_k - target_k| / sum_k target_k`` over the arrival windows ``k``: how
    closely the aggregate follows the rate function window by window; passes at <= 2 %.
``client_share``
    the largest ``|share - weight share|`` over the composed clients; passes at <= 0.01.
``cv_ratio``
    median of generated / source inter-arrival CV over client-windows with at least
    ``min_cv_requests`` (200) generated requests; passes within 0.9-1.1. With sessions only
    their first turns count (session starts follow the client's arrival process; later turns
    follow think times). The generated CV is
    :func:`servegen_core.characterize.arrivals.window_cv` on the source's window grid; the source CV is the
    recorded one.
``cv_ratio_tails``
    the same ratios per recorded family (Gamma, Weibull, each with at least 30 client-windows;
    no row when no family has that many):
    the value is the smallest 10th percentile over the families, and the check passes when
    every family's p10 is at least 0.8 and its p90 at most 1.5 (a median of 1 can hide windows
    generated at a third of their recorded CV). The detail lists each family's median, p10
    and p90.
``interarrival_ks``
    Kolmogorov-Smirnov distance between each client-window's generated gaps (client-windows
    with at least ``min_cv_requests`` generated requests) and the source's: the window's
    observed gaps where the source keeps them (a fitted trace, ``ClientPool.gaps``), else the
    recorded family (Gamma or Weibull) with the shape that gives the recorded CV (with
    ``arrival_shape="fitted_shape"``: the recorded shape); gaps are in units of their window's
    mean spacing (duration over requests), so the comparison is of the gaps' shape, not the
    rate. Value: the median; passes at <= 0.1. The detail gives
    the 90th percentile (ServeGen's fitted Weibull shapes often imply a smaller CV than the
    recorded one; a workload that honours the recorded CV departs from the fitted shape in
    those windows); the per-window table is ``report.gaps``.
``dispersion`` (trace sources)
    variance-to-mean ratio of the aggregate counts per 1 s, 10 s and 60 s bins, generated /
    source over the span; value is the ratio farthest from 1 (on a log scale), passing within
    a factor 1.5. The source trace is read again from the spec's path. When the source's
    timestamps are on a grid (:func:`servegen_core.sources.traces.timestamp_resolution`), the
    generated times are floored onto it (what the source's clock would have recorded), and a
    bin shorter than the grid is reported as measuring the grid and left out.
``edge_burst``
    the aggregate rate in the first and last ``e`` seconds of every arrival window over the
    mean rate, ``e`` = 10 ms or, for a small workload, wide enough to expect 200 requests there
    (at most 5 s; a workload too small even then has no such row); passes within 0.5-1.3
    (generators that rescale gaps to span each window pile requests onto the edges).
``load_kept``
    the share of the source's recorded requests in the span, over the composed clients and
    those left out for missing length data, that the composed client-windows carry; passes at
    or above the spec's ``min_load_kept``.
``borrowed_share`` (reported, never fails)
    the share of generated requests whose client-window has no length tables of its own and
    drew from the borrowed mixture (``missing_lengths="borrow"``) or the pooled one; ``n`` is
    the number of such clients. ``load_kept`` counts their load as kept: this line says how
    much of the export has lengths that are not its client's.
``length_ks``
    median Kolmogorov-Smirnov distance between a client's generated lengths and the PDF it
    was drawn from (its own, or for a client without tables the borrowed or pooled mixture,
    so the check covers every exported request), per (client, length window, field) with at
    least ``min_ks_requests`` (2,000) generated requests in that client-window; passes below 0.02. Fields whose source PDF is
    a single value (e.g. ``audio_count`` = 0 throughout) are left out. Both CDFs are step
    functions, evaluated at the union of their support points.
``input_output_spearman``
    median over clients with at least ``min_corr_requests`` (1,000) requests of the
    within-client Spearman rank correlation between the input-length field and
    ``output_tokens``; passes within 0.1 of the spec's copula value
    (``6/pi * asin(length_correlation / 2)``, 0 by default).
``prefix_input_ks`` (workloads with a prefix model: the ``turn_index`` column)
    the ``length_ks`` statistic for ``input_tokens`` alone, over every turn of every session
    (later turns draw their own lengths and a session's inputs are sorted, smallest first):
    the input marginal still matches each client's PDF; passes below 0.02.
``input_total`` / ``reasoning_sum`` (when the columns exist)
    share of rows where ``input_tokens != text + image + audio + video tokens`` or
    ``reasoning_tokens + answer_tokens != output_tokens``; passes at 0.

A trace read back from a file can be validated too: pass the frame and its spec (the source is
loaded again, or pass ``pool``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.special import gammainc, gammaln

from servegen_core.characterize.arrivals import window_cv
from servegen_core.generate.compose import plan_workload
from servegen_core.generate.plan import ComposePlan, Workload
from servegen_core.sources.pool import ClientPool
from servegen_core.sources.traces import load_trace, timestamp_resolution
from servegen_core.result import Result
from servegen_core.renewal import gamma_shape_for_cv, weibull_shape_for_cv
from servegen_core.spec import TraceSource, WorkloadSpec

__all__ = ["CHECKS_SCHEMA", "ValidationReport", "validate"]

CHECKS_SCHEMA: dict[str, pl.DataType] = {
    "name": pl.String(),
    "value": pl.Float64(),
    "target": pl.String(),
    "low": pl.Float64(),
    "high": pl.Float64(),
    "passed": pl.Boolean(),
    "n": pl.Int64(),
    "detail": pl.String(),
}

#: Fields whose PDF describes one value per request (``<m>_tokens`` of multimodal data are per item).
_PER_ITEM = ("image_tokens", "audio_tokens", "video_tokens")


@dataclass(frozen=True)
class ValidationReport(Result):
    """Checks of a workload against its spec and source, plus the tables behind them.

    ``checks``: ``name, value, target, low, high, passed, n, detail`` (``low``/``high`` bound
    ``value``; ``n`` is how many items the value summarizes). ``windows``: per arrival window,
    ``t0_s, duration_s, target_requests, requests``. ``clients``: per composed client,
    ``client_id, requests, share, weight_share``. ``cv``: per client-window with enough
    requests, ``client_id, start_s, requests, cv, source_cv, ratio``. ``ks``: per (client,
    length window, field), ``client_id, length_start_s, field, requests, ks``.
    ``correlation``: per client, ``client_id, requests, spearman``. ``gaps``: per client-window
    with enough requests, ``client_id, start_s, requests, ks`` (inter-arrival KS).
    """

    checks: pl.DataFrame
    windows: pl.DataFrame = field(default_factory=pl.DataFrame)
    clients: pl.DataFrame = field(default_factory=pl.DataFrame)
    cv: pl.DataFrame = field(default_factory=pl.DataFrame)
    ks: pl.DataFrame = field(default_factory=pl.DataFrame)
    correlation: pl.DataFrame = field(default_factory=pl.DataFrame)
    gaps: pl.DataFrame = field(default_factory=pl.DataFrame)

    @property
    def passed(self) -> bool:
        """True when every check passed (False for an empty report)."""
        return self.checks.height > 0 and bool(self.checks["passed"].all())

    def check(self, name: str) -> dict:
        """One row of ``checks`` as a dict (KeyError if the check was not run)."""
        rows = self.checks.filter(pl.col("name") == name)
        if rows.height == 0:
            msg = f"no check {name!r}; checks: {self.checks['name'].to_list()}"
            raise KeyError(msg)
        return rows.row(0, named=True)

    def failed(self) -> list[str]:
        """Names of the checks that did not pass."""
        return self.checks.filter(~pl.col("passed"))["name"].to_list()


def _row(name: str, value: float | None, target: str, low: float | None, high: float | None, n: int, detail: str) -> dict:
    ok = value is not None and not math.isnan(value)
    passed = ok and (low is None or value >= low) and (high is None or value <= high)
    return {
        "name": name,
        "value": float(value) if ok else None,
        "target": target,
        "low": low,
        "high": high,
        "passed": bool(passed),
        "n": int(n),
        "detail": detail,
    }


def validate(
    workload: Workload | pl.DataFrame,
    spec: WorkloadSpec | None = None,
    *,
    pool: ClientPool | None = None,
    min_cv_requests: int = 200,
    min_ks_requests: int = 2000,
    min_corr_requests: int = 1000,
) -> ValidationReport:
    """Check ``workload`` (a :class:`Workload`, or a RequestTrace with its ``spec``) against
    the rate function, the weights and the source's arrival and length statistics.

    With a :class:`Workload`, ``spec`` defaults to the workload's own. With a bare frame,
    ``spec`` is required and the source is loaded from it unless ``pool`` is given.
    """
    plan = _plan_for(workload, spec, pool)
    trace = workload.trace if isinstance(workload, Workload) else workload
    if trace.height == 0:
        return ValidationReport(pl.DataFrame(schema=CHECKS_SCHEMA), reason="the workload has no requests")
    rows: list[dict] = []

    windows, row = _total_and_windows(trace, plan)
    rows += row
    clients, row = _shares(trace, plan)
    rows.append(row)
    cv, row = _cv(trace, plan, min_cv_requests)
    rows.append(row)
    if (row := _cv_tails(cv, plan)) is not None:
        rows.append(row)
    gaps, row = _interarrival_ks(trace, plan, min_cv_requests)
    rows.append(row)
    if (row := _dispersion(trace, plan)) is not None:
        rows.append(row)
    if (row := _edge_burst(trace, plan)) is not None:
        rows.append(row)
    rows.append(_load_kept(plan))
    rows.append(_borrowed_share(trace, plan))
    ks, row = _ks(trace, plan, min_ks_requests)
    rows.append(row)
    corr, row = _correlation(trace, plan, min_corr_requests)
    rows.append(row)
    rows += _consistency(trace)
    rows += _prefix_inputs(trace, plan, min_ks_requests)
    checks = pl.DataFrame(rows, schema=CHECKS_SCHEMA)
    return ValidationReport(checks, windows=windows, clients=clients, cv=cv, ks=ks, correlation=corr, gaps=gaps)


def _plan_for(workload: Workload | pl.DataFrame, spec: WorkloadSpec | None, pool: ClientPool | None) -> ComposePlan:
    if isinstance(workload, Workload):
        if spec is None or spec == workload.spec:
            return workload.plan
        return plan_workload(spec, pool=pool if pool is not None else workload.plan.pool)
    if not isinstance(workload, pl.DataFrame):
        msg = f"expected a Workload or a RequestTrace frame, got {type(workload).__name__}"
        raise TypeError(msg)
    if spec is None:
        msg = "validating a bare RequestTrace needs its spec"
        raise ValueError(msg)
    return plan_workload(spec, pool=pool)


def _total_and_windows(trace: pl.DataFrame, plan: ComposePlan) -> tuple[pl.DataFrame, list[dict]]:
    targets = plan.targets
    t0 = targets["t0_s"].to_numpy()
    dur = targets["duration_s"].to_numpy()
    target_req = targets["target_rps"].to_numpy() * dur
    ts = trace["timestamp_s"].to_numpy()
    k = np.clip(np.searchsorted(t0, ts, side="right") - 1, 0, len(t0) - 1)
    counts = np.bincount(k, minlength=len(t0)).astype(np.float64)
    windows = pl.DataFrame({"t0_s": t0, "duration_s": dur, "target_requests": target_req, "requests": counts})
    total_target = float(target_req.sum())
    ratio = trace.height / total_target if total_target > 0 else float("nan")
    tracking = float(np.abs(counts - target_req).sum() / total_target) if total_target > 0 else float("nan")
    return windows, [
        _row(
            "total_requests",
            ratio,
            "within 1 % of the rate function's integral",
            0.99,
            1.01,
            len(t0),
            f"{trace.height:,} requests generated, {total_target:,.1f} targeted",
        ),
        _row(
            "rate_tracking",
            tracking,
            "sum |generated - target| per window <= 2 % of the total",
            None,
            0.02,
            len(t0),
            f"over {len(t0)} arrival window(s)",
        ),
    ]


def _shares(trace: pl.DataFrame, plan: ComposePlan) -> tuple[pl.DataFrame, dict]:
    gen = trace.group_by("client_id").agg(pl.len().cast(pl.Float64).alias("requests"))
    clients = (
        plan.weights.select("client_id", "weight_share")
        .join(gen, on="client_id", how="full", coalesce=True)
        .with_columns(pl.col("requests").fill_null(0.0), pl.col("weight_share").fill_null(0.0))
        .with_columns((pl.col("requests") / pl.col("requests").sum()).alias("share"))
        .select("client_id", "requests", "share", "weight_share")
    )
    diff = float((clients["share"] - clients["weight_share"]).abs().max())
    worst = clients.with_columns((pl.col("share") - pl.col("weight_share")).abs().alias("d")).sort("d", descending=True)
    detail = f"largest gap at client {worst['client_id'][0]}" if worst.height else ""
    return clients, _row("client_share", diff, "max |share - weight share| <= 0.01", None, 0.01, clients.height, detail)


def _cv(trace: pl.DataFrame, plan: ComposePlan, min_requests: int) -> tuple[pl.DataFrame, dict]:
    W = int(plan.pool.window_s)
    offset = (plan.span_start_s - plan.pool.start_s) % W
    origin = plan.span_start_s - offset  # source time of the shifted trace's 0
    if "turn_index" in trace.columns:  # sessions: their starts follow the client's arrival process
        trace = trace.filter(pl.col("turn_index") == 0)
    shifted = trace.select(pl.col("timestamp_s") + offset, "client_id")
    table = window_cv(shifted, window_s=W, min_requests=max(int(min_requests), 3))
    schema = {"client_id": pl.String(), "start_s": pl.Float64(), "requests": pl.Float64(), "cv": pl.Float64(),
              "source_cv": pl.Float64(), "ratio": pl.Float64()}
    if not table.ok:
        return pl.DataFrame(schema=schema), _row(
            "cv_ratio", None, "median generated/source CV in 0.9-1.1", 0.9, 1.1, 0,
            f"no client-window with >= {min_requests} requests ({table.reason})",
        )
    src = plan.client_windows.select("client_id", pl.col("start_s").cast(pl.Float64), pl.col("source_cv"))
    cv = (
        table.frame.with_columns((pl.col("start_s").cast(pl.Float64) + origin).alias("start_s"))
        .join(src, on=["client_id", "start_s"], how="inner")
        .filter(pl.col("source_cv") > 0)
        .with_columns((pl.col("cv") / pl.col("source_cv")).alias("ratio"))
        .select(list(schema))
        .sort("client_id", "start_s")
    )
    med = float(cv["ratio"].median()) if cv.height else float("nan")
    detail = f"{cv.height} client-window(s) with >= {min_requests} requests"
    return cv, _row("cv_ratio", med, "median generated/source CV in 0.9-1.1", 0.9, 1.1, cv.height, detail)


def _cv_tails(cv: pl.DataFrame, plan: ComposePlan) -> dict | None:
    target = "per family: p10 of generated/source CV >= 0.8 and p90 <= 1.5"
    if cv.height == 0:
        return None
    fam = plan.client_windows.select("client_id", pl.col("start_s").cast(pl.Float64), "pattern").unique(["client_id", "start_s"])
    per = (
        cv.join(fam, on=["client_id", "start_s"], how="inner")
        .group_by("pattern")
        .agg(
            pl.len().alias("n"),
            pl.col("ratio").median().alias("med"),
            pl.col("ratio").quantile(0.1, "linear").alias("p10"),
            pl.col("ratio").quantile(0.9, "linear").alias("p90"),
        )
        .filter(pl.col("n") >= 30)
        .sort("pattern")
    )
    if per.height == 0:
        return None
    p10 = float(per["p10"].min())
    p90 = float(per["p90"].max())
    detail = "; ".join(f"{r['pattern']}: {r['n']} windows, median {r['med']:.3f}, p10 {r['p10']:.3f}, p90 {r['p90']:.3f}" for r in per.iter_rows(named=True))
    row = _row("cv_ratio_tails", p10, target, 0.8, None, int(per["n"].sum()), detail)
    row["passed"] = bool(row["passed"] and p90 <= 1.5)
    return row


def _window_gaps(trace: pl.DataFrame, plan: ComposePlan, min_requests: int) -> pl.DataFrame:
    """Generated gaps per client-window (source window grid): ``client_id, start_s, gap``, for
    windows with at least ``min_requests`` requests, in units of the window's mean spacing
    (its duration inside the span over its request count; the sample mean of the gaps would
    be biased low, as the gap across the window's edges is not observed)."""
    W = int(plan.pool.window_s)
    offset = (plan.span_start_s - plan.pool.start_s) % W
    origin = plan.span_start_s - offset
    ids = trace["client_id"]
    names = ids.unique().sort()
    code = ids.replace_strict(names, pl.Series(np.arange(len(names))), return_dtype=pl.Int64).to_numpy()
    ts = trace["timestamp_s"].to_numpy()
    win = ((ts + offset) // W).astype(np.int64)
    key = code * (int(win.max()) + 1 if len(win) else 1) + win
    # a RequestTrace is sorted by time: a stable sort by key keeps each window in time order
    order = np.argsort(key, kind="stable") if bool(np.all(np.diff(ts) >= 0)) else np.lexsort((ts, key))
    key, ts = key[order], ts[order]
    same = key[1:] == key[:-1]
    gap_key = key[1:][same]
    gap = np.diff(ts)[same]
    uk, inv, cnt = np.unique(gap_key, return_inverse=True, return_counts=True)
    keep_g = cnt + 1 >= min_requests
    mean = np.bincount(inv, weights=gap, minlength=len(uk)) / np.maximum(cnt, 1)
    sel = keep_g[inv] & (mean[inv] > 0)
    nw = int(win.max()) + 1 if len(win) else 1
    k = uk[inv[sel]]
    out = pl.DataFrame(
        {
            "client_id": names.gather(k // nw),
            "start_s": ((k % nw) * W + origin).astype(np.float64),
            "gap": gap[sel],
            "_n": (cnt[inv[sel]] + 1).astype(np.float64),
        }
    )
    dur = plan.client_windows.select("client_id", pl.col("start_s").cast(pl.Float64), "duration_s").unique(["client_id", "start_s"])
    return (
        out.join(dur, on=["client_id", "start_s"], how="inner")
        .with_columns((pl.col("gap") * pl.col("_n") / pl.col("duration_s")).alias("gap"))
        .select("client_id", "start_s", "gap")
    )


def _interarrival_ks(trace: pl.DataFrame, plan: ComposePlan, min_requests: int) -> tuple[pl.DataFrame, dict]:
    schema = {"client_id": pl.String(), "start_s": pl.Float64(), "requests": pl.Int64(), "ks": pl.Float64()}
    target = "median KS of a client-window's gaps vs the source's <= 0.1"
    gen = _window_gaps(trace, plan, max(int(min_requests), 3))
    keys = ["client_id", "start_s"]
    src_gaps = getattr(plan.pool, "gaps", None)
    cw = plan.client_windows.select("client_id", pl.col("start_s").cast(pl.Float64), "pattern", "shape", "source_cv").unique(keys)
    if plan.spec.arrival_shape == "recorded_cv":
        # the recorded CV describes the window: the family's shape with that CV
        cv = cw["source_cv"].to_numpy().astype(np.float64)
        ok = np.isfinite(cv) & (cv > 0)
        safe = np.where(ok, cv, 1.0)
        k = np.where(cw["pattern"].to_numpy() == "Weibull", weibull_shape_for_cv(safe), gamma_shape_for_cv(safe))
        cw = cw.with_columns(pl.Series("shape", np.where(ok, k, cw["shape"].to_numpy()), dtype=pl.Float64))
    if src_gaps is not None and src_gaps.height:
        wdur = plan.pool.windows.select("client_id", pl.col("start_s").cast(pl.Float64), pl.col("duration_s").cast(pl.Float64).alias("_d"))
        src = (
            src_gaps.select("client_id", pl.col("start_s").cast(pl.Float64), pl.col("gap_s").alias("gap"))
            .join(gen.select(keys).unique(), on=keys, how="semi")
            .join(wdur, on=keys, how="inner")
            # in units of the source window's mean spacing, like the generated gaps
            .with_columns((pl.col("gap") * (pl.len().over(keys) + 1) / pl.col("_d")).alias("gap"))
            .filter(pl.col("gap").is_finite())
            .select(*keys, "gap")
        )
        both = pl.concat([gen.with_columns(pl.lit(1.0).alias("g"), pl.lit(0.0).alias("s")),
                          src.with_columns(pl.lit(0.0).alias("g"), pl.lit(1.0).alias("s"))])
        both = both.join(src.select(keys).unique(), on=keys, how="semi").sort(*keys, "gap")
        per = (
            both.with_columns(
                (pl.col("g").cum_sum().over(keys) / pl.col("g").sum().over(keys)).alias("fg"),
                (pl.col("s").cum_sum().over(keys) / pl.col("s").sum().over(keys)).alias("fs"),
                # ties: compare the CDFs after the last of equal values only
                (pl.col("gap") != pl.col("gap").shift(-1).over(keys)).fill_null(True).alias("_last"),
            )
            .filter(pl.col("_last"))
            .group_by(keys)
            .agg((pl.col("fg") - pl.col("fs")).abs().max().alias("ks"))
        )
        what = "the source window's observed gaps"
    else:
        per = _ks_against_family(gen, cw)
        what = "the recorded family with the recorded CV" if plan.spec.arrival_shape == "recorded_cv" else "the recorded family and shape"
    sizes = gen.group_by(keys).agg((pl.len() + 1).cast(pl.Int64).alias("requests"))
    table = per.join(sizes, on=keys).select(list(schema)).cast(schema).sort(*keys)
    if table.height == 0:
        return table, _row("interarrival_ks", None, target, None, 0.1, 0, f"no client-window with >= {min_requests} requests")
    med = float(table["ks"].median())
    p90 = float(table["ks"].quantile(0.9, "linear"))
    return table, _row("interarrival_ks", med, target, None, 0.1, table.height,
                       f"{table.height} client-window(s) against {what}; p90 {p90:.3f}")


#: Gaps below this (in units of the window's mean spacing) are compared only as a mass.
GAP_FLOOR = 1e-6
#: Order statistics of a window at which its one-sample KS distance is evaluated, at most
#: (the distance is then exact within about 1/KS_POINTS).
KS_POINTS = 500


def _ks_against_family(gen: pl.DataFrame, cw: pl.DataFrame) -> pl.DataFrame:
    """One-sample KS of each client-window's unit-mean gaps against its recorded family/shape."""
    keys = ["client_id", "start_s"]
    groups = gen.select(keys).unique(maintain_order=True).join(cw, on=keys, how="inner").filter(pl.col("shape") > 0)
    groups = groups.with_row_index("_g")
    g = gen.join(groups.select(*keys, "_g"), on=keys, how="inner")
    gid = g["_g"].to_numpy().astype(np.int64)
    x = g["gap"].to_numpy()
    # one sort by group, then gap: x / (1 + x) maps the gaps into [0, 1) monotonically (gaps too
    # close to tell apart there are below GAP_FLOOR, compared as a mass only)
    order = np.argsort(gid + x / (1.0 + x))
    gid, x = gid[order], x[order]
    n = np.bincount(gid, minlength=groups.height)
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    rank = np.arange(len(x)) - start[gid]
    below = np.bincount(gid, weights=(x < GAP_FLOOR).astype(np.float64), minlength=len(n))
    # windows with many gaps are evaluated at about KS_POINTS of their order statistics (every
    # ``step``-th, and the last): the sup over them is within step/n of the full KS distance
    step = np.maximum(1, n // KS_POINTS)[gid]
    pick = (rank % step == 0) | (rank == n[gid] - 1)
    gid, x, rank = gid[pick], x[pick], rank[pick]
    n_pick = np.bincount(gid, minlength=groups.height)
    start = np.concatenate([[0], np.cumsum(n_pick)[:-1]])
    k = groups["shape"].to_numpy().astype(np.float64)[gid]
    weib = (groups["pattern"] == "Weibull").to_numpy()[gid]
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        lam = np.exp(-gammaln(1.0 + 1.0 / k))
        f = np.where(weib, -np.expm1(-np.power(np.maximum(x, 0.0) / lam, k)), gammainc(k, k * np.maximum(x, 0.0)))
    d = np.maximum(np.abs((rank + 1) / n[gid] - f), np.abs(rank / n[gid] - f))
    # below GAP_FLOOR (a millionth of the mean spacing: float timestamps cannot hold such gaps,
    # which very bursty Gamma shapes draw by the majority) only the mass is compared
    tiny = x < GAP_FLOOR
    if tiny.any():
        kk = groups["shape"].to_numpy().astype(np.float64)
        wb = (groups["pattern"] == "Weibull").to_numpy()
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            lam0 = np.exp(-gammaln(1.0 + 1.0 / kk))
            f0 = np.where(wb, -np.expm1(-np.power(GAP_FLOOR / lam0, kk)), gammainc(kk, kk * GAP_FLOOR))
        d = np.where(tiny, np.abs(below[gid] / n[gid] - f0[gid]), d)
    has = n_pick > 0
    ks = np.maximum.reduceat(d, start[has]) if len(d) else np.empty(0)
    return groups.filter(pl.Series(has)).select(keys).with_columns(pl.Series("ks", ks, dtype=pl.Float64))


def _dispersion(trace: pl.DataFrame, plan: ComposePlan) -> dict | None:
    """Counts-per-bin dispersion against the source trace (trace sources only)."""
    src = plan.spec.source
    if not isinstance(src, TraceSource):
        return None
    target = "variance/mean of counts per 1, 10, 60 s within a factor 1.5 of the source"
    try:
        raw = load_trace(
            plan.spec.resolve_path(src.path), preset=src.preset, columns=dict(src.columns) or None,
            time_unit=src.time_unit, client_column=src.client_column,
        ).trace
    except (OSError, ValueError) as exc:
        return _row("dispersion", None, target, 1 / 1.5, 1.5, 0, f"the source trace cannot be read again: {exc}")
    t0, d = plan.span_start_s, plan.span_duration_s
    ts_src = raw.filter((pl.col("timestamp_s") >= t0) & (pl.col("timestamp_s") < t0 + d))["timestamp_s"].to_numpy() - t0
    ts_gen = trace["timestamp_s"].to_numpy()
    parts, worst = [], 1.0
    res = timestamp_resolution(raw["timestamp_s"])
    grid = res.grid_s if res.quantized and math.isfinite(res.grid_s) and res.n_gaps >= 10 else 0.0
    if grid >= 1e-3:
        # what the source's clock would have recorded: the generated times on its grid
        ts_gen = np.floor(ts_gen / grid + 1e-9) * grid
    for b in (1.0, 10.0, 60.0):
        nb = int(d // b)
        if nb < 3:
            continue
        if grid > b * (1 + 1e-9):
            parts.append(f"{b:g} s: measures the source's {grid:g} s timestamp grid, not its traffic (left out)")
            continue
        vm = []
        for ts in (ts_gen, ts_src):
            c = np.bincount(np.minimum((ts // b).astype(np.int64), nb - 1)[ts < nb * b], minlength=nb).astype(np.float64)
            vm.append(c.var() / c.mean() if c.mean() > 0 else float("nan"))
        r = vm[0] / vm[1] if vm[1] > 0 else float("nan")
        parts.append(f"{b:g} s: {vm[0]:.2f} vs {vm[1]:.2f}")
        if not math.isfinite(r) or abs(math.log(r)) > abs(math.log(worst)):
            worst = r
    if not parts:
        return _row("dispersion", None, target, 1 / 1.5, 1.5, 0, "the span is too short for 1 s bins")
    return _row("dispersion", worst, target, 1 / 1.5, 1.5, len(parts), "; ".join(parts))


def _edge_burst(trace: pl.DataFrame, plan: ComposePlan) -> dict | None:
    target = "rate in the first and last 10 ms of the arrival windows within 0.5-1.3x the mean"
    win = plan.targets.filter(pl.col("duration_s") > 0)
    t0 = win["t0_s"].to_numpy()
    t1 = t0 + win["duration_s"].to_numpy()
    ts = trace["timestamp_s"].to_numpy()
    rate = trace.height / plan.span_duration_s
    n_edges = 2 * len(t0)
    e = 0.01
    if rate * n_edges * e < 200:
        e = min(5.0, 200.0 / max(rate * n_edges, 1e-300))
    if rate * n_edges * e < 200:
        return None  # too few requests near the edges to tell a burst from a cluster
    k = np.clip(np.searchsorted(t0, ts, side="right") - 1, 0, len(t0) - 1)
    at_edge = (ts - t0[k] < e) | (t1[k] - ts <= e)
    ratio = float(at_edge.sum()) / (n_edges * e) / rate if rate > 0 else float("nan")
    detail = f"{int(at_edge.sum())} requests within {e * 1000:g} ms of {len(t0)} window edge pairs ({ratio * rate * n_edges * e / max(ratio, 1e-300):,.0f} expected at the mean rate)"
    return _row("edge_burst", ratio, target, 0.5, 1.3, n_edges, detail)


def _load_kept(plan: ComposePlan) -> dict:
    kept_threshold = float(plan.spec.min_load_kept)
    target = f"share of the source's load in the span that is composed >= {kept_threshold:g}"
    pool = plan.pool
    start, end = plan.span_start_s, plan.span_start_s + plan.span_duration_s
    owners = set(plan.clients) | set(plan.exclusions.get("no_lengths", ()))
    w = pool.windows.filter(pl.col("client_id").is_in(sorted(owners)) & (pl.col("rate_rps") > 0)).with_columns(
        (
            pl.min_horizontal((pl.col("start_s") + pl.col("duration_s")).cast(pl.Float64), pl.lit(end))
            - pl.max_horizontal(pl.col("start_s").cast(pl.Float64), pl.lit(start))
        ).clip(0.0).alias("_d")
    )
    source = float((w["rate_rps"] * w["_d"]).sum())
    cw = plan.client_windows
    kept = float((cw["source_rate_rps"] * cw["duration_s"]).sum())
    share = kept / source if source > 0 else float("nan")
    detail = f"{kept:,.0f} of {source:,.0f} recorded requests (missing_lengths={plan.spec.missing_lengths!r})"
    return _row("load_kept", share, target, kept_threshold, None, len(owners), detail)


def _length_sources(trace: pl.DataFrame, plan: ComposePlan) -> pl.DataFrame:
    """Per generated request (trace order): ``client_id, length_start_s`` and the
    ``length_source`` of its client-window (``client``, ``borrowed`` or ``pooled``)."""
    pool = plan.pool
    LW = int(pool.length_window_s)
    origin = int(pool.length_windows["start_s"].min()) if pool.length_windows.height else 0
    src_t = pl.col("timestamp_s") + plan.span_start_s
    gen = trace.select("client_id", (((src_t - origin) // LW) * LW + origin).cast(pl.Int64).alias("length_start_s"))
    by_window = plan.client_windows.group_by("client_id", "length_start_s").agg(pl.col("length_source").first())
    return gen.join(by_window.cast({"length_start_s": pl.Int64}), on=["client_id", "length_start_s"], how="left", maintain_order="left")


def _borrowed_share(trace: pl.DataFrame, plan: ComposePlan) -> dict:
    """``borrowed_share``: the share of generated requests whose lengths come from another
    client's tables (``borrowed``) or the pooled mixture, not their own (reported, not gated)."""
    src = _length_sources(trace, plan)["length_source"].fill_null("pooled")
    n = trace.height
    borrowed = int((src == "borrowed").sum())
    pooled = int((src == "pooled").sum())
    clients = trace.filter(src != "client")["client_id"].n_unique()
    share = (borrowed + pooled) / n if n else float("nan")
    detail = (
        f"{borrowed:,} borrowed + {pooled:,} pooled of {n:,} requests, from {clients} client(s) without length "
        f"tables of their own (missing_lengths={plan.spec.missing_lengths!r}, lengths={plan.spec.lengths!r}); "
        "length_ks compares them with the tables they were drawn from"
    )
    return _row("borrowed_share", share, "share of requests with borrowed or pooled lengths (reported)", None, None, clients, detail)


def _drawn_distributions(plan: ComposePlan, fields: list[str]) -> pl.DataFrame:
    """``client_id, start_s, field, value, prob`` of the tables every composed client-window
    draws from: its own PDF, or the borrowed or pooled mixture it was given."""
    pool = plan.pool
    own = pool.distributions.filter(pl.col("field").is_in(fields)).select("client_id", "start_s", "field", "value", "prob")
    tables = plan.tables
    others = plan.client_windows.filter(pl.col("length_source") != "client").select("client_id", "length_start_s", "length_source").unique()
    if others.height == 0 or tables is None:
        return own
    keys = tables.keys.filter(pl.col("client_id").is_null() & pl.col("field").is_in(fields))
    starts = np.concatenate([[0], tables.ends[:-1]])
    parts = []
    for table, lw, f in zip(keys["table"].to_list(), keys["length_start_s"].to_list(), keys["field"].to_list()):
        a, b = int(starts[table]), int(tables.ends[table])
        cum = tables.cum[a:b] - table
        prob = np.diff(np.concatenate([[0.0], cum]))
        parts.append(pl.DataFrame({"_lw": [lw] * (b - a), "field": [f] * (b - a), "value": tables.values[a:b].astype(np.float64), "prob": prob},
                                  schema={"_lw": pl.Int64(), "field": pl.String(), "value": pl.Float64(), "prob": pl.Float64()}))
    if not parts:
        return own
    mixtures = pl.concat(parts)
    borrowed = others.filter(pl.col("length_source") == "borrowed").join(mixtures.filter(pl.col("_lw").is_not_null()), left_on="length_start_s", right_on="_lw")
    pooled = others.filter(pl.col("length_source") == "pooled").join(mixtures.filter(pl.col("_lw").is_null()).drop("_lw"), how="cross")
    drawn = pl.concat(
        [t.select("client_id", pl.col("length_start_s").alias("start_s"), "field", "value", "prob") for t in (borrowed, pooled)],
        how="vertical_relaxed",
    )
    own = own.with_columns(pl.col("value").cast(pl.Float64))
    return pl.concat([own, drawn.cast(own.schema)])


def _ks(trace: pl.DataFrame, plan: ComposePlan, min_requests: int) -> tuple[pl.DataFrame, dict]:
    schema = {"client_id": pl.String(), "length_start_s": pl.Int64(), "field": pl.String(), "requests": pl.Int64(), "ks": pl.Float64()}
    pool = plan.pool
    fields = [f for f in plan.request_fields if f in trace.columns and f not in _PER_ITEM]
    dist = _drawn_distributions(plan, fields)
    # leave out degenerate fields (a single value everywhere)
    spread = dist.group_by("field").agg(pl.col("value").n_unique().alias("nv"))
    fields = [f for f in fields if f in spread.filter(pl.col("nv") > 1)["field"].to_list()]
    if not fields:
        return pl.DataFrame(schema=schema), _row("length_ks", None, "median KS < 0.02", None, 0.02, 0, "no length field to compare")
    LW = int(pool.length_window_s)
    origin = int(pool.length_windows["start_s"].min()) if pool.length_windows.height else 0
    src_t = pl.col("timestamp_s") + plan.span_start_s
    gen = trace.select(
        "client_id",
        (((src_t - origin) // LW) * LW + origin).cast(pl.Int64).alias("length_start_s"),
        *fields,
    )
    sizes = gen.group_by("client_id", "length_start_s").agg(pl.len().alias("requests")).filter(pl.col("requests") >= min_requests)
    if sizes.height == 0:
        return pl.DataFrame(schema=schema), _row(
            "length_ks", None, "median KS < 0.02", None, 0.02, 0, f"no client-window with >= {min_requests} requests"
        )
    gen = gen.join(sizes.select("client_id", "length_start_s"), on=["client_id", "length_start_s"], how="semi")
    counts = (
        gen.unpivot(index=["client_id", "length_start_s"], on=fields, variable_name="field", value_name="value")
        .with_columns(pl.col("value").cast(pl.Float64))
        .group_by("client_id", "length_start_s", "field", "value")
        .agg(pl.len().cast(pl.Float64).alias("g"))
    )
    src = dist.rename({"start_s": "length_start_s"}).join(
        sizes.select("client_id", "length_start_s"), on=["client_id", "length_start_s"], how="semi"
    ).select("client_id", "length_start_s", "field", "value", pl.col("prob").alias("p"))
    keys = ["client_id", "length_start_s", "field"]
    both = (
        counts.join(src, on=[*keys, "value"], how="full", coalesce=True)
        .with_columns(pl.col("g").fill_null(0.0), pl.col("p").fill_null(0.0))
        .join(src.select(keys).unique(), on=keys, how="semi")  # only client-windows with a source PDF
        .sort(*keys, "value")
        .with_columns(
            (pl.col("g").cum_sum().over(keys) / pl.col("g").sum().over(keys)).alias("fg"),
            (pl.col("p").cum_sum().over(keys) / pl.col("p").sum().over(keys)).alias("fp"),
        )
    )
    ks = (
        both.group_by(keys)
        .agg((pl.col("fg") - pl.col("fp")).abs().max().alias("ks"))
        .join(sizes, on=["client_id", "length_start_s"])
        .select(list(schema))
        .cast(schema)
        .sort(*keys)
    )
    med = float(ks["ks"].median()) if ks.height else float("nan")
    detail = f"{ks.height} (client, length window, field) with >= {min_requests} requests; fields {fields}"
    return ks, _row("length_ks", med, "median KS < 0.02", None, 0.02, ks.height, detail)


def _correlation(trace: pl.DataFrame, plan: ComposePlan, min_requests: int) -> tuple[pl.DataFrame, dict]:
    schema = {"client_id": pl.String(), "requests": pl.Int64(), "spearman": pl.Float64()}
    rho = float(plan.spec.length_correlation)
    expected = 6.0 / math.pi * math.asin(rho / 2.0)
    target = f"median within-client Spearman within 0.1 of {expected:.3f}"
    in_col = "input_tokens" if "text_tokens" not in trace.columns else "text_tokens"
    per = (
        trace.group_by("client_id")
        .agg(
            pl.len().alias("requests"),
            pl.corr(pl.col(in_col), pl.col("output_tokens"), method="spearman").alias("spearman"),
        )
        .filter(pl.col("requests") >= min_requests)
        .with_columns(pl.col("spearman").fill_nan(None))
        .drop_nulls("spearman")
        .select(list(schema))
        .cast(schema)
        .sort("client_id")
    )
    if per.height == 0:
        return per, _row("input_output_spearman", None, target, expected - 0.1, expected + 0.1, 0,
                         f"no client with >= {min_requests} requests and varying lengths")
    med = float(per["spearman"].median())
    worst = float(per["spearman"].abs().max())
    detail = f"{per.height} client(s) with >= {min_requests} requests ({in_col} vs output_tokens); largest |rho| {worst:.3f}"
    return per, _row("input_output_spearman", med, target, expected - 0.1, expected + 0.1, per.height, detail)


def _consistency(trace: pl.DataFrame) -> list[dict]:
    rows = []
    parts = [c for c in ("text_tokens", "image_tokens", "audio_tokens", "video_tokens") if c in trace.columns]
    if "text_tokens" in parts:
        bad = trace.filter(pl.col("input_tokens") != pl.sum_horizontal(parts)).height
        rows.append(_row("input_total", bad / trace.height, "input_tokens == sum of modality tokens on every row",
                         None, 0.0, trace.height, f"{bad} row(s) differ; parts {parts}"))
    if {"reasoning_tokens", "answer_tokens"} <= set(trace.columns):
        bad = trace.filter(pl.col("reasoning_tokens") + pl.col("answer_tokens") != pl.col("output_tokens")).height
        rows.append(_row("reasoning_sum", bad / trace.height, "reasoning + answer == output on every row",
                         None, 0.0, trace.height, f"{bad} row(s) differ"))
    return rows


def _prefix_inputs(trace: pl.DataFrame, plan: ComposePlan, min_requests: int) -> list[dict]:
    """``prefix_input_ks``: the input-length marginal of a workload with sessions and shared
    prompts against each client's source PDF (only when the trace has ``turn_index``)."""
    if "turn_index" not in trace.columns or "input_tokens" not in plan.request_fields:
        return []
    only_input = dataclasses.replace(plan, request_fields=("input_tokens",))
    _table, row = _ks(trace, only_input, min_requests)
    later = int((trace["turn_index"] > 0).sum())
    row.update(
        name="prefix_input_ks",
        target="median KS of input_tokens (every turn) < 0.02",
        detail=f"{row['detail']}; {later:,} of {trace.height:,} requests are later turns of a session",
    )
    return [row]
