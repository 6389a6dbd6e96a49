"""A synthetic conversation trace with known structure, for the conversation and reuse tests.

Sessions start as a Poisson process; each uses one of ``prompts`` system prompts with Zipf
popularity (with probability ``prompt_share``; otherwise none) and, with probability ``doc_share``, one of ``docs`` shared documents (Zipf too)
after it; a session has a geometric number of turns with Gamma think times; every later turn's
input is the previous input, the previous answer and a new user message (the first user
message: log-normal of median ``first_tokens``, at most ``first_max``; later ones median 150). ``hash_ids`` are
512-token blocks of that content (a block is identified by the whole prefix up to its end).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from servegen_core.blocks import hash_ids


def conversation_trace(
    seed: int,
    *,
    duration_s: float = 3600.0,
    session_rate: float = 0.6,
    prompts: int = 8,
    docs: int = 40,
    doc_share: float = 0.3,
    mean_turns: float = 3.0,
    think_mean_s: float = 60.0,
    block_size: int = 512,
    prompt_share: float = 1.0,
    first_tokens: float = 300.0,
    first_max: int = 4000,
) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n_sess = rng.poisson(session_rate * duration_s)
    start = np.sort(rng.uniform(0, duration_s, n_sess))
    zipf_p = np.arange(1, prompts + 1, dtype=float) ** -1.2
    zipf_p /= zipf_p.sum()
    zipf_d = np.arange(1, docs + 1, dtype=float) ** -1.0
    zipf_d /= zipf_d.sum()
    prompt_len = rng.integers(600, 3000, prompts)
    doc_len = rng.integers(1500, 9000, docs)
    rows: dict[str, list] = {"timestamp_s": [], "session_id": [], "input_tokens": [], "output_tokens": [], "segment_ids": [], "segment_tokens": []}
    seg_counter = 10_000
    for s in range(n_sess):  # a test builder: a loop per session is fine here
        p = int(rng.choice(prompts, p=zipf_p))
        ids, toks = [1 + p], [int(prompt_len[p])]
        if prompt_share < 1.0 and rng.random() >= prompt_share:
            ids, toks = [], []  # no system prompt
        if doc_share > 0 and rng.random() < doc_share:
            d = int(rng.choice(docs, p=zipf_d))
            ids.append(1000 + p * docs + d)  # the document after this prompt: its own prefix
            toks.append(int(doc_len[d]))
        turns = min(int(rng.geometric(1.0 / mean_turns)), 20)
        t = start[s]
        for j in range(turns):
            seg_counter += 1
            ids.append(seg_counter)
            toks.append(int(np.clip(rng.lognormal(np.log(150 if j else first_tokens), 0.9), 5, 4000 if j else first_max)))
            out = int(np.clip(rng.exponential(250), 1, 2000))
            if t < duration_s:
                rows["timestamp_s"].append(float(t))
                rows["session_id"].append(f"c{s}")
                rows["input_tokens"].append(int(sum(toks)))
                rows["output_tokens"].append(out)
                rows["segment_ids"].append(list(ids))
                rows["segment_tokens"].append(list(toks))
            seg_counter += 1
            ids.append(seg_counter)
            toks.append(out)
            t += float(rng.gamma(2.0, think_mean_s / 2.0))
    frame = pl.DataFrame(rows, schema_overrides={"segment_ids": pl.List(pl.Int64), "segment_tokens": pl.List(pl.Int64)})
    frame = frame.with_columns(pl.lit("all").alias("client_id")).sort("timestamp_s", maintain_order=True)
    blocks = hash_ids(frame["segment_ids"], frame["segment_tokens"], block_size=block_size)
    return frame.with_columns(blocks.alias("hash_ids")).drop("segment_ids", "segment_tokens")
