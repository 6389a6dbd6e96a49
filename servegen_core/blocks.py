"""Block hash ids: 63-bit ids of prompt segments and of the blocks of a request's prompt.

Foundation module shared by generation (:mod:`servegen_core.generate.sessions` names every
prompt segment with :func:`hash_parts`) and export (``hash_ids`` columns are derived from the
segments with :func:`block_keys`).

Block ids (:func:`hash_ids`) at any block size ``B``: block ``k`` of a request covers tokens
``[kB, min((k+1)B, x))``; its id is a hash of (the id of the segment holding its last token,
the block's end offset). A segment id fixes everything before the segment, so two requests
that share exactly their first ``X`` tokens share exactly their first ``floor(X / B)`` blocks
(and, when both are the same ``X`` tokens long, the last partial block too).

Hashing is splitmix64, vectorized; uint64 arithmetic wraps by design.
"""

from __future__ import annotations

import numpy as np
import polars as pl

__all__ = [
    "TAG_BLOCK",
    "TAG_DELTA",
    "TAG_KEY",
    "TAG_PROMPT",
    "TAG_TURN",
    "block_keys",
    "hash_ids",
    "hash_parts",
    "id63",
    "lists_by_owner",
    "splitmix",
]

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
#: Hash domains: a system prompt's segment, a turn's own segment, a block key, a prompt's
#: sort key, and the new blocks of a turn that extends its session (export).
TAG_PROMPT, TAG_TURN, TAG_BLOCK, TAG_KEY, TAG_DELTA = 1, 2, 3, 4, 5


def splitmix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer of every element of ``x`` (uint64)."""
    with np.errstate(over="ignore"):
        z = x + _M1
        z = (z ^ (z >> np.uint64(30))) * _M2
        z = (z ^ (z >> np.uint64(27))) * _M3
    return z ^ (z >> np.uint64(31))


def hash_parts(tag: int, *parts: np.ndarray | int) -> np.ndarray:
    """A uint64 hash of ``tag`` and the integer arrays ``parts`` (broadcast together)."""
    arrays = [np.asarray(p).astype(np.int64).astype(np.uint64) for p in parts]
    shape = np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else ()
    h = np.full(shape, np.uint64(tag), dtype=np.uint64)
    for a in arrays:
        h = splitmix(h ^ splitmix(a))
    return h


def id63(h: np.ndarray) -> np.ndarray:
    """The top 63 bits of uint64 hashes as non-negative int64 ids."""
    return (h >> np.uint64(1)).astype(np.int64)


def block_keys(segment_ids: pl.Series, segment_tokens: pl.Series, *, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The 63-bit key of every block of every request (row order, then block order) and the
    row each belongs to: what :func:`hash_ids` returns, flat.

    Block ``k`` (tokens ``[kB, min((k+1)B, x))``) is keyed by a hash of the id of the
    segment holding its last token and the block's end offset; requests get
    ``ceil(x / B)`` keys. Requests that share exactly their first ``X`` tokens share exactly
    their first ``floor(X / B)`` keys (see the module docstring).
    """
    if block_size < 1:
        msg = f"block_size must be a positive number of tokens, got {block_size}"
        raise ValueError(msg)
    n = len(segment_ids)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    lens = segment_tokens.list.len().fill_null(0).to_numpy()
    ids = segment_ids.explode().drop_nulls().to_numpy().astype(np.int64)
    toks = segment_tokens.explode().drop_nulls().to_numpy().astype(np.int64)
    seg_req = np.repeat(np.arange(n), lens)
    x = np.bincount(seg_req, weights=toks, minlength=n).astype(np.int64)
    nblocks = (x + block_size - 1) // block_size
    blk_req = np.repeat(np.arange(n, dtype=np.int64), nblocks)
    bfirst = np.concatenate([[0], np.cumsum(nblocks)[:-1]])
    k = np.arange(int(nblocks.sum()), dtype=np.int64) - np.repeat(bfirst, nblocks)
    end = np.minimum((k + 1) * block_size, x[blk_req])
    # global token positions: request offset + position inside the request
    req_base = np.concatenate([[0], np.cumsum(x)[:-1]])
    seg_end = np.cumsum(toks)  # global end of each segment
    seg = np.searchsorted(seg_end, req_base[blk_req] + end - 1, side="right")
    with np.errstate(over="ignore"):
        mixed = splitmix(ids[seg].astype(np.uint64) ^ (end.astype(np.uint64) * _M2) ^ np.uint64(TAG_BLOCK))
    return id63(mixed), blk_req


def hash_ids(segment_ids: pl.Series, segment_tokens: pl.Series, *, block_size: int) -> pl.Series:
    """``hash_ids`` at ``block_size`` tokens per block from a request's prompt segments: the
    keys of :func:`block_keys` as one list per request."""
    keys, owner = block_keys(segment_ids, segment_tokens, block_size=block_size)
    return lists_by_owner(owner, len(segment_ids), hash_ids=keys)["hash_ids"]


def lists_by_owner(owner: np.ndarray, n: int, **values: np.ndarray) -> pl.DataFrame:
    """List(Int64) columns of ``n`` rows from flat values grouped by ``owner`` (sorted row
    numbers; a row without values gets an empty list), without a Python loop per row."""
    flat = pl.DataFrame(
        {"_r": owner.astype(np.int64), **{k: v.astype(np.int64) for k, v in values.items()}},
        schema={"_r": pl.Int64(), **{k: pl.Int64() for k in values}},
    )
    grouped = flat.group_by("_r", maintain_order=True).agg(*values)
    if grouped.height == n:  # every row has values: already one row each, in order
        return grouped.select(pl.col(k).cast(pl.List(pl.Int64)) for k in values)
    full = pl.DataFrame({"_r": np.arange(n, dtype=np.int64)}).join(grouped, on="_r", how="left", maintain_order="left")
    return full.select(pl.col(k).fill_null([]).cast(pl.List(pl.Int64)) for k in values)


# --------------------------------------------------------------------------------------------
# Fitting a prefix model from a trace with hash_ids
# --------------------------------------------------------------------------------------------
