"""Row generation: the requests of a range of a plan's generation units.

Every generation unit (an arrival window, or a piece of a busy one; see
:class:`~servegen_core.generate.plan.GenerationUnits`) has its own generators,
``np.random.default_rng([seed, window_index, 0, piece])`` for counts, arrival positions and
length uniforms, and ``default_rng([seed, window_index, 1, piece])`` for per-item tokens, drawn
in a fixed order. The rows of a unit therefore do not depend on which other units are
generated with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from servegen_core.generate.classes import CLASS_COLUMNS
from servegen_core.generate.tables import copula_columns, length_uniforms
from servegen_core.arrival_models import sample_positions
from servegen_core.schema import PREFIX_COLUMNS, SCHEMA

if TYPE_CHECKING:  # annotations only: plan imports this module
    from servegen_core.generate.plan import ComposePlan

__all__ = ["generate_rows"]


def generate_rows(plan: ComposePlan, k0: int, k1: int) -> pl.DataFrame:
    """Rows of units ``k0 <= k < k1`` (plan unit order), sorted by timestamp (stable: ties
    keep unit, then client, order), without the prefix columns."""
    units = plan.units
    cols = [c for c in plan.output_columns if c not in PREFIX_COLUMNS and c not in CLASS_COLUMNS]
    r0, r1 = int(units.row_offsets[k0]), int(units.row_offsets[k1])
    if r1 <= r0:
        return pl.DataFrame(schema={c: SCHEMA[c] for c in cols})
    seed = int(plan.spec.seed)
    win_idx = units.window_index[k0:k1]
    win_piece = units.piece[k0:k1]
    row_off = units.row_offsets[k0 : k1 + 1] - r0
    gens = [np.random.default_rng([seed, int(w), 0, int(p)]) for w, p in zip(win_idx, win_piece)]
    request_fields = plan.request_fields
    n_fields = len(request_fields)
    rho = float(plan.spec.length_correlation)
    corr = copula_columns(request_fields) if rho != 0.0 else None
    arrivals = plan.arrivals

    # 1) arrivals: per unit, the request counts (target rounded at random to an unbiased
    #    integer), the clients' circular stationary patterns of their arrival models
    #    (servegen_core.arrival_models.sample_positions), then the lengths' uniforms, all from
    #    the unit's own generator
    expected = units.row_expected[r0:r1]
    row_model = units.row_model[r0:r1]
    model_table = arrivals.table
    n_parts: list[np.ndarray] = []
    pos_parts: list[np.ndarray] = []
    u_parts: list[np.ndarray] = []
    for i, g in enumerate(gens):
        s0, s1 = int(row_off[i]), int(row_off[i + 1])
        e = expected[s0:s1]
        base = np.floor(e)
        n_i = (base + (g.random(s1 - s0) < e - base)).astype(np.int64)
        pos_i = sample_positions(g, n_i, model_table.take(row_model[s0:s1]))
        n_parts.append(n_i)
        pos_parts.append(pos_i)
        u_parts.append(length_uniforms(g, int(n_i.sum()), n_fields, rho, corr))
    n = np.concatenate(n_parts) if n_parts else np.zeros(0, dtype=np.int64)
    pos = np.concatenate(pos_parts) if pos_parts else np.empty(0)
    u_len = np.concatenate(u_parts) if u_parts else np.empty((0, n_fields))
    req_off = np.concatenate([[0], np.cumsum(n)])
    unit_req = req_off[row_off]
    n_req = int(req_off[-1])

    # 2) times: operational fractions mapped back through the cumulative rate of the unit
    row_t0 = np.repeat(units.row_t0_s[r0:r1], n)
    row_d = np.repeat(units.row_duration_s[r0:r1], n)
    time_map = arrivals.time_map
    if time_map is not None:
        lam_start = time_map.cumulative(units.row_t0_s[r0:r1])
        lam_end = time_map.cumulative(units.row_t0_s[r0:r1] + units.row_duration_s[r0:r1])
        x = np.repeat(lam_start, n) + pos * np.repeat(lam_end - lam_start, n)
        t = time_map.inverse(x)
        t = np.clip(t, row_t0, None)
    else:
        t = row_t0 + pos * row_d
    t = np.minimum(t, np.nextafter(row_t0 + row_d, -np.inf))

    # 3) lengths: inverse CDF per field, every field from its own uniforms
    tids = units.row_tables[r0:r1]
    req_tids = np.repeat(tids[:, :n_fields], n, axis=0)
    vals = plan.tables.sample(req_tids.ravel(), u_len.ravel(), np.unique(tids[:, :n_fields])).reshape(n_req, n_fields)
    out: dict[str, np.ndarray] = {}
    for j, f in enumerate(request_fields):
        out[f] = vals[:, j]

    # 4) per-item tokens (images, audio, video), from each unit's second generator
    item_gens: list[np.random.Generator] = []
    for m_i, m in enumerate(plan.item_modalities):
        counts = out[f"{m}_count"].astype(np.int64)
        item_off = np.concatenate([[0], np.cumsum(counts)])
        unit_items = item_off[unit_req]
        u_items = np.empty(int(item_off[-1]), dtype=np.float64)
        if m_i == 0:
            item_gens = [np.random.default_rng([seed, int(w), 1, int(p)]) for w, p in zip(win_idx, win_piece)]
        for i, g in enumerate(item_gens):
            s, e = int(unit_items[i]), int(unit_items[i + 1])
            u_items[s:e] = g.random(e - s)
        item_req = np.repeat(np.arange(n_req), counts)
        item_tids = np.repeat(np.repeat(tids[:, n_fields + m_i], n), counts)
        tokens = plan.tables.sample(item_tids, u_items, np.unique(tids[:, n_fields + m_i])) if len(item_req) else np.empty(0)
        out[f"{m}_tokens"] = np.bincount(item_req, weights=tokens, minlength=n_req)
    return _assemble(plan, out, t, np.repeat(units.row_client[r0:r1], n), n_req, cols)


def _assemble(
    plan: ComposePlan, out: dict[str, np.ndarray], t: np.ndarray, client: np.ndarray, n_req: int, cols: list[str]
) -> pl.DataFrame:
    """The frame of drawn requests: totals derived (input from its parts, reasoning from
    ``reason_ratio``), rows sorted by time (stable)."""
    order = np.argsort(t, kind="stable")
    data: dict[str, pl.Series] = {"timestamp_s": pl.Series("timestamp_s", t[order], dtype=pl.Float64)}
    names = pl.Series("client_id", list(plan.units.client_ids), dtype=pl.String)
    data["client_id"] = names.gather(client[order])

    def ints(x: np.ndarray) -> np.ndarray:
        # table values and their sums are whole numbers stored in float64: the cast is exact
        return x.astype(np.int64)

    if "input_tokens" in out:
        input_tokens = ints(out["input_tokens"])
    else:
        input_tokens = ints(out.get("text_tokens", np.zeros(n_req)))
        for m in plan.item_modalities:
            input_tokens = input_tokens + ints(out[f"{m}_tokens"])
        for f in ("audio_tokens", "video_tokens", "image_tokens"):
            if f in out and f.split("_")[0] not in plan.item_modalities:
                input_tokens = input_tokens + ints(out[f])
    output_tokens = ints(out["output_tokens"])
    data["input_tokens"] = pl.Series("input_tokens", input_tokens[order], dtype=pl.Int64)
    data["output_tokens"] = pl.Series("output_tokens", output_tokens[order], dtype=pl.Int64)
    for f in ("text_tokens", "image_tokens", "image_count", "audio_tokens", "audio_count", "video_tokens", "video_count"):
        if f in out:
            data[f] = pl.Series(f, ints(out[f])[order], dtype=pl.Int64)
    if "reason_ratio" in out:
        ratio = out["reason_ratio"]
        reasoning = np.rint(output_tokens * ratio).astype(np.int64)
        data["reasoning_tokens"] = pl.Series("reasoning_tokens", reasoning[order], dtype=pl.Int64)
        data["answer_tokens"] = pl.Series("answer_tokens", (output_tokens - reasoning)[order], dtype=pl.Int64)
        data["reason_ratio"] = pl.Series("reason_ratio", ratio[order], dtype=pl.Float64)
    return pl.DataFrame([data[c] for c in cols])
