"""Length tables and their sampling: inverse-CDF tables of every (client, length window,
field) in use, the pooled and borrowed mixtures, and the Gaussian copula of
``length_correlation``.

Every field is drawn from its own uniform random numbers by inverse CDF
(:meth:`LengthTables.sample`: ``searchsorted`` on the cumulative tables, all tables
concatenated with offsets), so input and output lengths are independent given the client and
window unless ``length_correlation`` couples the input-length field and ``output_tokens``
(:func:`length_uniforms`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.special import ndtr

from servegen_core.errors import SpecError
from servegen_core.sources.pool import ClientPool

__all__ = ["INPUT_FIELDS", "LengthTables", "build_length_tables", "copula_columns", "length_uniforms", "table_ids"]

#: Fields that may hold the input length, in order of preference (the copula's first field).
INPUT_FIELDS: tuple[str, ...] = ("input_tokens", "text_tokens")


@dataclass(frozen=True, eq=False)
class LengthTables:
    """Concatenated inverse-CDF tables.

    ``keys`` (``client_id, length_start_s, field, table``) names every table: a client's own
    (client and length window set), the pooled one of each field (both null) and the
    borrowed mixture of a length window (client null). ``values`` are the bin values;
    ``cum`` the cumulative probability within each table plus the table number (so one
    ``searchsorted`` serves all tables; a table's last bin is exactly ``table + 1``);
    ``ends`` one past each table's last bin.
    """

    keys: pl.DataFrame
    values: np.ndarray
    cum: np.ndarray
    ends: np.ndarray

    def sample(self, tids: np.ndarray, u: np.ndarray, used: np.ndarray | None = None) -> np.ndarray:
        """Inverse-CDF draws: table ``tids[i]`` at uniform ``u[i]`` (all tables at once).

        The answer is ``searchsorted(cum, tids + u, side="right")``. To avoid a full binary
        search per draw, each table in use gets a guide of ``K`` equal cells of ``[0, 1)``
        (``K`` a power of two, 2 to 4 cells per bin): a draw whose cell holds no bin boundary
        is answered by the guide alone; only the others are searched. ``K`` depends only on
        the table, so the result does not depend on which draws are sampled together.
        ``used`` (sorted, unique) lists the tables that ``tids`` may hold, if known.
        """
        cum, ends = self.cum, self.ends
        if len(tids) == 0:
            return self.values[:0]
        if used is None:
            used = np.unique(tids)
        starts = np.concatenate([[0], ends[:-1]])[used]
        bins = ends[used] - starts
        k = np.left_shift(1, np.clip(np.ceil(np.log2(np.maximum(2 * bins, 16))), 4, 16).astype(np.int64))
        goff = np.concatenate([[0], np.cumsum(k + 1)])
        local = np.repeat(np.arange(len(used)), k + 1)
        within = np.arange(int(goff[-1])) - np.repeat(goff[:-1], k + 1)
        # the tables in use are searched as one contiguous block of ``cum`` (tables are numbered
        # length window first, so a chunk's tables are close together)
        lo, hi = int(starts[0]), int(ends[used[-1]])
        block = cum[lo:hi]
        guide = lo + np.searchsorted(block, used[local] + within / k[local], side="right")
        # per-table cell count and guide offset, indexed by table id (0 for tables not in use)
        k_of = np.zeros(len(ends), dtype=np.float64)
        k_of[used] = k
        off_of = np.zeros(len(ends), dtype=np.int64)
        off_of[used] = goff[:-1]
        cell = off_of[tids] + (u * k_of[tids]).astype(np.int64)
        idx = guide[cell]
        ambiguous = np.flatnonzero(guide[1:][cell] != idx)
        if len(ambiguous):
            t_amb = tids[ambiguous]
            idx[ambiguous] = np.minimum(lo + np.searchsorted(block, t_amb + u[ambiguous], side="right"), ends[t_amb] - 1)
        return self.values[idx]


def copula_columns(fields: tuple[str, ...]) -> tuple[int, int] | None:
    """Indices of (input-length field, output_tokens) in ``fields``, or None."""
    ins = [f for f in INPUT_FIELDS if f in fields]
    if not ins or "output_tokens" not in fields:
        return None
    return fields.index(ins[0]), fields.index("output_tokens")


def length_uniforms(
    rng: np.random.Generator, n: int, n_fields: int, rho: float, columns: tuple[int, int] | None
) -> np.ndarray:
    """``(n, n_fields)`` uniforms for the length fields of ``n`` requests.

    Independent uniforms when ``columns`` is None (no correlation asked, or no input/output
    pair); otherwise standard normals with column ``columns[1]`` set to ``rho z_in +
    sqrt(1 - rho^2) z_out`` (a Gaussian copula of correlation ``rho`` between the two
    fields), mapped to uniforms by the normal CDF.
    """
    if columns is None:
        return rng.random((n, n_fields))
    z = rng.standard_normal((n, n_fields))
    col_in, col_out = columns
    z[:, col_out] = rho * z[:, col_in] + math.sqrt(1.0 - rho * rho) * z[:, col_out]
    return ndtr(z)


def build_length_tables(
    pool: ClientPool, span_pool: ClientPool, client_windows: pl.DataFrame, fields: tuple[str, ...]
) -> tuple[LengthTables, pl.DataFrame]:
    """The inverse-CDF tables of every (client, length window, field) the client-windows use
    (``length_source == "client"``), one pooled table per field and one borrowed table per
    (length window, field) with ``length_source == "borrowed"``; and the pooled distribution
    (``field, value, prob``).

    Pooled: the mixture of the composed clients' own tables weighted by their expected
    requests (when no composed client has one, the span's clients' tables weighted by their
    recorded requests). Borrowed: per length window, the mixture of the composed clients'
    own tables there, weighted by their expected requests in it. ``span_pool`` provides the
    distributions; ``pool`` (the whole source) only names the source in errors.
    """
    cw = client_windows
    dist = span_pool.distributions.filter(pl.col("field").is_in(fields))
    own = cw.filter(pl.col("length_source") == "client").select("client_id", "length_start_s").unique()
    needs_pooled = cw.filter(pl.col("length_source") == "pooled").height > 0
    # pooled: mixture of the composed clients' own tables weighted by their target requests
    mix = (
        cw.filter(pl.col("has_lengths") & pl.lit(needs_pooled))
        .group_by("client_id", "length_start_s")
        .agg(pl.col("expected_requests").sum().alias("_w"))
    )
    if needs_pooled and not (mix.height and float(mix["_w"].sum()) > 0):
        lws = span_pool.length_window_s
        mix = (
            span_pool.windows.filter(pl.col("rate_rps") > 0)
            .with_columns((pl.col("start_s") // lws * lws).alias("length_start_s"))
            .group_by("client_id", "length_start_s")
            .agg((pl.col("rate_rps") * pl.col("duration_s")).sum().alias("_w"))
            .join(dist.select("client_id", pl.col("start_s").alias("length_start_s")).unique(), on=["client_id", "length_start_s"])
        )
    pooled = (
        dist.join(mix, left_on=["client_id", "start_s"], right_on=["client_id", "length_start_s"], how="inner")
        .group_by("field", "value")
        .agg((pl.col("prob") * pl.col("_w")).sum().alias("prob"))
        .with_columns((pl.col("prob") / pl.col("prob").sum().over("field")).alias("prob"))
        .filter(pl.col("prob") > 0)
    )
    if needs_pooled and pooled.select(pl.col("field").n_unique()).item() < len(fields):
        raise SpecError("source", f"{pool.name} has no length distributions in the span to pool")
    field_rank = pl.DataFrame(
        {"field": list(fields), "_frank": list(range(len(fields)))}, schema={"field": pl.String(), "_frank": pl.Int64()}
    )
    pooled = pooled.join(field_rank, on="field").sort("_frank", "value").drop("_frank")

    keys = (
        own.join(field_rank, how="cross")
        .sort("length_start_s", "client_id", "_frank")
        .with_row_index("table")
        .with_columns(pl.col("table").cast(pl.Int64))
    )
    n_own = keys.height
    own_rows = (
        dist.join(keys, left_on=["client_id", "start_s", "field"], right_on=["client_id", "length_start_s", "field"], how="inner")
        .select("table", "value", "prob")
    )
    pooled_rows = pooled.join(field_rank, on="field").select((pl.col("_frank") + n_own).alias("table"), "value", "prob")
    # borrowed: per length window, the mixture of the composed clients' own tables there,
    # weighted by their expected requests in that length window
    borrow_lw = cw.filter(pl.col("length_source") == "borrowed").select("length_start_s").unique().sort("length_start_s")
    donors = (
        cw.filter(pl.col("has_lengths"))
        .join(borrow_lw, on="length_start_s", how="semi")
        .group_by("client_id", "length_start_s")
        .agg(pl.col("expected_requests").sum().alias("_w"))
    )
    borrowed_keys = (
        borrow_lw.join(field_rank, how="cross")
        .sort("length_start_s", "_frank")
        .with_row_index("table", offset=n_own + len(fields))
        .with_columns(pl.col("table").cast(pl.Int64))
    )
    borrowed_rows = (
        dist.join(donors, left_on=["client_id", "start_s"], right_on=["client_id", "length_start_s"], how="inner")
        .group_by("start_s", "field", "value")
        .agg((pl.col("prob") * pl.col("_w")).sum().alias("prob"))
        .join(borrowed_keys, left_on=["start_s", "field"], right_on=["length_start_s", "field"], how="inner")
        .with_columns((pl.col("prob") / pl.col("prob").sum().over("table")).alias("prob"))
        .filter(pl.col("prob") > 0)
        .select("table", "value", "prob")
    )
    rows = pl.concat([own_rows, pooled_rows, borrowed_rows]).sort("table", "value")
    rows = rows.with_columns(
        (pl.col("prob").cum_sum().over("table") / pl.col("prob").sum().over("table")).alias("_c"),
        (pl.int_range(pl.len()).over("table") == pl.len().over("table") - 1).alias("_last"),
    )
    table = rows["table"].to_numpy()
    cum = rows["_c"].to_numpy() + table
    last = rows["_last"].to_numpy()
    cum[last] = table[last] + 1.0
    n_tables = n_own + len(fields) + borrowed_keys.height
    ends = np.searchsorted(table, np.arange(n_tables), side="right").astype(np.int64)
    pooled_keys = pl.DataFrame(
        {
            "client_id": [None] * len(fields),
            "length_start_s": [None] * len(fields),
            "field": list(fields),
            "table": list(range(n_own, n_own + len(fields))),
        },
        schema={"client_id": pl.String(), "length_start_s": pl.Int64(), "field": pl.String(), "table": pl.Int64()},
    )
    all_keys = pl.concat(
        [
            keys.select("client_id", "length_start_s", "field", "table"),
            pooled_keys,
            borrowed_keys.select(pl.lit(None, dtype=pl.String).alias("client_id"), "length_start_s", "field", "table"),
        ],
        how="vertical_relaxed",
    )
    return LengthTables(keys=all_keys, values=rows["value"].to_numpy(), cum=cum, ends=ends), pooled


def table_ids(client_windows: pl.DataFrame, keys: pl.DataFrame, fields: tuple[str, ...]) -> np.ndarray:
    """The table id of every client-window (rows) and field (columns), by its ``length_source``."""
    tids = np.empty((client_windows.height, len(fields)), dtype=np.int64)
    pooled = keys.filter(pl.col("client_id").is_null())
    own = keys.filter(pl.col("client_id").is_not_null())
    base = client_windows.select("client_id", "length_start_s", "length_source").with_row_index("_r")
    for j, f in enumerate(fields):
        pooled_tid = int(pooled.filter(pl.col("field") == f)["table"][0])
        joined = base.join(
            own.filter(pl.col("field") == f).select("client_id", "length_start_s", "table"),
            on=["client_id", "length_start_s"],
            how="left",
        ).sort("_r")
        src = joined["length_source"].to_numpy()
        tid = np.where(src == "client", joined["table"].fill_null(pooled_tid).to_numpy(), pooled_tid)
        if "borrowed" in set(src.tolist()):
            # borrowed tables are numbered after the client tables: key (None client, length window)
            bor = keys.filter(pl.col("client_id").is_null() & pl.col("length_start_s").is_not_null() & (pl.col("field") == f))
            bj = base.join(bor.select("length_start_s", "table"), on="length_start_s", how="left").sort("_r")
            tid = np.where(src == "borrowed", bj["table"].fill_null(pooled_tid).to_numpy(), tid)
        tids[:, j] = tid
    return tids
