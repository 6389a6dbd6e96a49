"""Calibrate a cost model on the user's own benchmark results by replaying their settings.

A benchmark result (an AIPerf ``profile_export_aiperf.json`` or a vLLM ``bench serve`` result
JSON) is one *setting* — a request rate (Poisson arrivals) or a closed loop of ``concurrency``
requests in flight, and the mean prompt and output lengths — with its measured mean TTFT and
TPOT. :func:`calibrate` fits three numbers of a roofline cost model (the per-iteration
overhead, a scale of its compute line and a scale of its memory line: in effect the compute
and bandwidth efficiencies) so that *simulating each setting* with
:func:`servegen_core.serve.simulate.simulate` reproduces its measured means. Queueing and
prefill/decode interference are thus part of the fit, not added on top at replay. A CSV of
measured iterations (``prefill_tokens, decode_seqs, context_tokens, time_ms``) is fitted
directly: each row is one iteration's time.

:func:`replay` simulates one setting (the same replay the fit uses); :func:`closed_loop` serves
``concurrency`` requests in flight as ``vllm bench serve --max-concurrency`` does (a new
request starts when one finishes).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from scipy.optimize import least_squares, minimize

from servegen_core.errors import DataFormatError, SpecError
from servegen_core.limits import MAX_CALIBRATION_BYTES
from servegen_core.serve.costmodel import CostModel
from servegen_core.serve.simulate import ServerConfig, simulate

__all__ = [
    "CALIBRATION_CSV_COLUMNS",
    "MAX_CALIBRATION_ROWS",
    "BenchSetting",
    "Replay",
    "calibrate",
    "closed_loop",
    "read_bench_setting",
    "replay",
]

#: Columns of a calibration CSV of measured iterations (one iteration or iteration average per row).
CALIBRATION_CSV_COLUMNS = ("prefill_tokens", "decode_seqs", "context_tokens", "time_ms")

#: Most rows a calibration CSV may hold (a fit of four coefficients needs far fewer).
MAX_CALIBRATION_ROWS = 100_000

#: Largest plausible values in a calibration file: latencies in seconds, token counts, request rates.
MAX_SECONDS = 1e6
MAX_TOKENS = 1e8
MAX_RATE = 1e6

#: Requests simulated per replayed setting (at least; the benchmark's own count up to the upper bound).
REPLAY_REQUESTS = (200, 600)


@dataclass(frozen=True)
class BenchSetting:
    """One benchmark run: its load (``rate`` requests/s with Poisson arrivals, or ``concurrency``
    requests in flight), its mean lengths, request count, and measured mean TTFT and TPOT (s)."""

    source: str
    kind: str
    rate: float | None
    concurrency: int | None
    input_tokens: int
    output_tokens: int
    requests: int
    ttft_s: float
    tpot_s: float


@dataclass(frozen=True)
class Replay:
    """Means of one simulated setting: TTFT and TPOT (s), output tokens per second, requests refused."""

    ttft_s: float
    tpot_s: float
    output_tokens_per_s: float
    refused: int


def _number(path: Path, key: str, value: object, lo: float, hi: float, *, positive: bool = False) -> float:
    """``value`` as a float in ``[lo, hi]`` (``(lo, hi]`` with ``positive``), else a :class:`DataFormatError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataFormatError(path, f"key {key}", f"expected a finite number, got {value!r}")
    v = float(value)
    if v < lo or v > hi or (positive and v <= lo):
        bound = f"> {lo:g}" if positive else f">= {lo:g}"
        raise DataFormatError(path, f"key {key}", f"expected a number {bound} and <= {hi:g}, got {v:g}")
    return v


def _aiperf_setting(data: Mapping[str, object], path: Path) -> BenchSetting:
    """The setting of an AIPerf ``profile_export_aiperf.json`` (``input_config.loadgen`` gives the
    concurrency or request rate when present; else the measured throughput is taken as the rate)."""
    units = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "us": 1e-6, "ns": 1e-9}

    def avg(key: str, hi: float, *, time: bool = False) -> float:
        entry = data.get(key)
        if not isinstance(entry, Mapping) or "avg" not in entry:
            raise DataFormatError(path, f"key {key}", "missing (AIPerf metric with an 'avg')")
        factor = 1.0
        if time:
            unit = entry.get("unit")
            if unit not in units:
                raise DataFormatError(path, f"key {key}.unit", f"expected a time unit ({', '.join(units)}), got {unit!r}")
            factor = units[str(unit)]
        return _number(path, f"{key}.avg", entry["avg"], 0.0, hi / factor, positive=True) * factor

    ttft = avg("time_to_first_token", MAX_SECONDS, time=True)
    itl = avg("inter_token_latency", MAX_SECONDS, time=True)
    throughput = avg("request_throughput", MAX_RATE)
    inp = avg("input_sequence_length", MAX_TOKENS)
    out = avg("output_sequence_length", MAX_TOKENS)
    count = data.get("request_count")
    n = int(_number(path, "request_count.avg", count["avg"], 1.0, 1e9)) if isinstance(count, Mapping) and "avg" in count else 0
    rate, conc = throughput, None
    config = data.get("input_config")
    loadgen = config.get("loadgen") if isinstance(config, Mapping) else None
    if isinstance(loadgen, Mapping):
        if loadgen.get("request_rate") is not None:
            rate = _number(path, "input_config.loadgen.request_rate", loadgen["request_rate"], 0.0, MAX_RATE, positive=True)
        elif loadgen.get("concurrency") is not None:
            conc = int(_number(path, "input_config.loadgen.concurrency", loadgen["concurrency"], 1.0, 4096.0))
            rate = None
    return BenchSetting(str(path), "aiperf", rate, conc, round(inp), max(1, round(out)), n, ttft, itl)


def _vllm_setting(data: Mapping[str, object], path: Path) -> BenchSetting:
    """The setting of a vLLM ``bench serve --save-result`` JSON (``request_rate``, ``max_concurrency``)."""
    for key in ("request_throughput", "mean_ttft_ms", "total_input_tokens", "total_output_tokens", "completed"):
        if key not in data:
            raise DataFormatError(path, f"key {key}", "missing (vLLM bench result JSON)")
    done = _number(path, "completed", data["completed"], 0.0, 1e9, positive=True)
    tpot_key = "mean_tpot_ms" if "mean_tpot_ms" in data else "mean_itl_ms"
    if tpot_key not in data:
        raise DataFormatError(path, "key mean_tpot_ms", "missing (vLLM bench result JSON)")
    ttft = _number(path, "mean_ttft_ms", data["mean_ttft_ms"], 0.0, MAX_SECONDS * 1e3, positive=True) * 1e-3
    tpot = _number(path, tpot_key, data[tpot_key], 0.0, MAX_SECONDS * 1e3, positive=True) * 1e-3
    inp = _number(path, "total_input_tokens", data["total_input_tokens"], 0.0, MAX_TOKENS * 1e9) / done
    out = _number(path, "total_output_tokens", data["total_output_tokens"], 0.0, MAX_TOKENS * 1e9, positive=True) / done
    throughput = _number(path, "request_throughput", data["request_throughput"], 0.0, MAX_RATE, positive=True)
    rate: float | None = throughput
    raw_rate = data.get("request_rate")
    if raw_rate is not None and raw_rate not in ("inf", float("inf")):
        rate = _number(path, "request_rate", raw_rate, 0.0, MAX_RATE, positive=True)
    conc = None
    if data.get("max_concurrency") is not None:
        conc = int(_number(path, "max_concurrency", data["max_concurrency"], 1.0, 4096.0))
        if raw_rate in (None, "inf", float("inf")):
            rate = None
    if conc is None and raw_rate in ("inf", float("inf")):
        msg = "request_rate inf without max_concurrency: every request at once, not a setting that can be replayed"
        raise DataFormatError(path, "key request_rate", msg)
    return BenchSetting(str(path), "vllm", rate, conc, round(inp), max(1, round(out)), int(done), ttft, tpot)


def read_bench_setting(path: str | Path) -> BenchSetting:
    """The :class:`BenchSetting` of one AIPerf or vLLM benchmark result JSON (:class:`DataFormatError` if not one)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(path, None, f"not JSON: {exc}") from None
    except RecursionError:
        raise DataFormatError(path, None, "not a benchmark result: JSON nested too deeply") from None
    if not isinstance(data, Mapping):
        raise DataFormatError(path, None, "expected a JSON object")
    if "time_to_first_token" in data:
        return _aiperf_setting(data, path)
    if "mean_ttft_ms" in data:
        return _vllm_setting(data, path)
    msg = "neither an AIPerf profile_export_aiperf.json (time_to_first_token) nor a vLLM bench result (mean_ttft_ms)"
    raise DataFormatError(path, None, msg)


def _read_iterations(path: Path) -> np.ndarray:
    """Rows ``(prefill_tokens, decode_seqs, context_tokens, seconds)`` of a calibration CSV.

    Read as UTF-8 with or without a byte-order mark, any line ending (an Excel export), header
    names trimmed; at most :data:`MAX_CALIBRATION_ROWS` rows; every value a finite number >= 0
    within the plausible bounds."""
    rows: list[tuple[float, float, float, float]] = []
    bounds = (MAX_TOKENS, 1e6, MAX_TOKENS * 1e3, MAX_SECONDS * 1e3)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in CALIBRATION_CSV_COLUMNS if c not in header]
            if missing:
                msg = f"missing column(s) {', '.join(missing)} (need {', '.join(CALIBRATION_CSV_COLUMNS)})"
                raise DataFormatError(path, "header", msg)
            at = [header.index(c) for c in CALIBRATION_CSV_COLUMNS]
            for i, rec in enumerate(reader, start=2):
                if not rec:
                    continue
                if len(rows) >= MAX_CALIBRATION_ROWS:
                    msg = f"more than {MAX_CALIBRATION_ROWS:,} rows (a calibration of measured iterations needs far fewer)"
                    raise DataFormatError(path, f"row {i}", msg)
                try:
                    vals = tuple(float(rec[j]) for j in at)
                except (IndexError, ValueError):
                    raise DataFormatError(path, f"row {i}", "every column must be a number") from None
                for col, v, hi in zip(CALIBRATION_CSV_COLUMNS, vals, bounds, strict=True):
                    if not (math.isfinite(v) and 0 <= v <= hi):
                        raise DataFormatError(path, f"row {i}, column {col}", f"expected a number in [0, {hi:g}], got {v!r}")
                if vals[3] <= 0:
                    raise DataFormatError(path, f"row {i}, column time_ms", "an iteration takes a positive time")
                rows.append(vals)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataFormatError(path, None, f"not a UTF-8 CSV: {type(exc).__name__}") from None
    if not rows:
        raise DataFormatError(path, None, "no measured iteration (header only)")
    out = np.asarray(rows, dtype=float)
    out[:, 3] *= 1e-3
    return out


def closed_loop(cost: CostModel, config: ServerConfig, concurrency: int, input_tokens: int, output_tokens: int, requests: int) -> pl.DataFrame:
    """The simulated requests of a closed loop: ``requests`` of the given lengths with
    ``concurrency`` in flight, each new one starting when one finishes (``vllm bench serve
    --max-concurrency N --request-rate inf``). The arrival times are the fixed point of
    "request ``N + m`` arrives at the ``m``-th completion", found by re-simulating (each pass
    fixes at least one more completion in time order)."""
    n = max(int(requests), int(concurrency))
    arrivals = np.zeros(n)
    frame = pl.DataFrame({"timestamp_s": arrivals, "input_tokens": np.full(n, input_tokens), "output_tokens": np.full(n, output_tokens)})
    res = simulate(frame, cost, config=config)
    for _ in range(n):
        finish = np.sort((res.requests["arrival_s"] + res.requests["e2e_s"]).fill_null(np.inf).to_numpy())
        nxt = np.concatenate([np.zeros(concurrency), finish[: n - concurrency]])
        if np.allclose(nxt, arrivals, rtol=0, atol=1e-12) or not np.isfinite(nxt).all():
            break
        arrivals = nxt
        res = simulate(frame.with_columns(timestamp_s=pl.Series(arrivals)), cost, config=config)
    return res.requests


def replay(setting: BenchSetting, cost: CostModel, config: ServerConfig | None = None, *, seed: int = 0) -> Replay:
    """Simulate ``setting`` on ``cost`` (one replica): Poisson arrivals at its rate, or a closed
    loop at its concurrency, with its mean lengths; the means of what was served."""
    config = config or ServerConfig()
    lo, hi = REPLAY_REQUESTS
    n = int(min(max(setting.requests, lo), hi))
    if setting.concurrency is not None:
        req = closed_loop(cost, config, setting.concurrency, setting.input_tokens, setting.output_tokens, n)
    else:
        rate = float(setting.rate or 1.0)
        gaps = np.random.default_rng(seed).exponential(1.0 / rate, n)
        frame = pl.DataFrame(
            {"timestamp_s": np.cumsum(gaps), "input_tokens": np.full(n, setting.input_tokens), "output_tokens": np.full(n, setting.output_tokens)}
        )
        req = simulate(frame, cost, config=config).requests
    done = req.filter(pl.col("completed"))
    if done.height == 0:
        return Replay(math.inf, math.inf, 0.0, int(req["refused"].sum()))
    span = float((done["arrival_s"] + done["e2e_s"]).max() - req["arrival_s"].min())
    tpot = done["tpot_s"].drop_nulls()
    return Replay(
        ttft_s=float(done["ttft_s"].mean()),
        tpot_s=float(tpot.mean()) if len(tpot) else 0.0,
        output_tokens_per_s=float(done["output_tokens"].sum()) / max(span, 1e-12),
        refused=int(req["refused"].sum()),
    )


def _scaled(base: CostModel, theta: np.ndarray, name: str, note: str) -> CostModel:
    """``base`` with its overhead ``exp(theta[0])`` seconds and its compute and memory lines
    (beyond the overhead) scaled by ``exp(theta[1])`` and ``exp(theta[2])``."""
    overhead, sc, sm = (float(v) for v in np.exp(theta))
    c0, m0 = base.compute[0], base.memory[0]
    shared = min(c0, m0)  # the per-iteration overhead both lines carry
    compute = (overhead + (c0 - shared) * sc, *(v * sc for v in base.compute[1:]))
    memory = (overhead + (m0 - shared) * sm, *(v * sm for v in base.memory[1:]))
    return CostModel(compute, memory, base.kv_tokens, name=name, note=note, max_context=base.max_context)


def calibrate(
    paths: Sequence[str | Path],
    *,
    base: CostModel,
    config: ServerConfig | None = None,
    name: str = "calibrated",
) -> CostModel:
    """``base`` (a roofline) with its overhead and compute and memory scales fitted to the
    user's benchmark results (see the module docstring); KV capacity and context limit stay
    ``base``'s (not observable from latencies).

    Benchmark JSON files are fitted by replaying each setting with ``config`` (the server's
    scheduler settings, default :class:`ServerConfig`) and matching the log of its measured
    mean TTFT and TPOT; CSV rows of measured iterations by matching each iteration's time. The
    note gives the largest relative error of the replayed means."""
    if not paths:
        raise SpecError("calibration", "give at least one benchmark result file")
    config = config or ServerConfig()
    settings: list[BenchSetting] = []
    iterations: list[np.ndarray] = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise DataFormatError(path, None, "file not found")
        size = path.stat().st_size
        if size > MAX_CALIBRATION_BYTES:
            msg = f"{size:,} bytes, above the {MAX_CALIBRATION_BYTES:,} bytes a calibration file may hold (servegen_core.limits)"
            raise DataFormatError(path, None, msg)
        if path.suffix.lower() == ".csv":
            iterations.append(_read_iterations(path))
        else:
            settings.append(read_bench_setting(path))
    rows = np.concatenate(iterations) if iterations else np.zeros((0, 4))
    if len(settings) + len(rows) < 2:
        raise DataFormatError(Path(paths[0]), None, "need at least two measurements to fit a cost model")
    t, s, ctx, secs = (rows[:, j] for j in range(4))
    pairs = t * (t + 1) / 2 + ctx

    def residuals(theta: np.ndarray) -> np.ndarray:
        cost = _scaled(base, theta, name, "")
        out = [np.log(np.asarray(cost.iteration_time(T=t, A=pairs, K=ctx, S=s), dtype=float) / secs)] if len(rows) else []
        for st in settings:
            r = replay(st, cost, config)
            out.append(np.log(np.array([max(r.ttft_s, 1e-12) / st.ttft_s, max(r.tpot_s, 1e-12) / st.tpot_s])))
        return np.concatenate(out) if out else np.zeros(0)

    def loss(theta: np.ndarray) -> float:
        r = residuals(theta)
        value = float(np.mean(np.minimum(r * r, 100.0)))
        return value if math.isfinite(value) else 100.0

    start = np.log([max(min(base.compute[0], base.memory[0]), 1e-6), 1.0, 1.0])
    if settings:  # each evaluation simulates every setting: a derivative-free search
        simplex = np.vstack([start, start + np.diag([0.4, 0.4, 0.4])])
        options = {"xatol": 2e-3, "fatol": 1e-7, "maxfev": 240, "initial_simplex": simplex}
        theta = minimize(loss, start, method="Nelder-Mead", options=options).x
    else:  # measured iterations only: a smooth least-squares problem
        theta = least_squares(residuals, start, xtol=1e-12, ftol=1e-12, gtol=1e-12).x
    worst = float(np.max(np.abs(np.expm1(residuals(theta))))) if len(settings) + len(rows) else 0.0
    overhead, sc, sm = np.exp(theta)
    kinds = sorted({st.kind for st in settings} | ({"csv"} if len(rows) else set()))
    note = (
        f"calibrated on {len(settings)} benchmark setting(s) replayed by simulation and {len(rows):,} measured iteration(s) "
        f"from {len(paths)} file(s) ({', '.join(kinds)}): overhead {overhead * 1e3:.3g} ms, compute x{sc:.3g}, memory x{sm:.3g} "
        f"of {base.name}; largest relative error {worst:.1%} (replayed means and iterations); KV capacity {base.kv_tokens:,} tokens (from {base.name})."
    )
    return _scaled(base, theta, name, note)
