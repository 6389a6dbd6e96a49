"""Benchmark: the prefix stage of compose (shared prompts, sessions) and its exports.

language/m-large, one hour from 20:00 of day 0 (``start_s=72000``), top 20 clients, at a
constant aggregate ``--rps`` (default 100 req/s, about 360,000 requests). The pool is loaded
once (not timed); each measurement is repeated ``--repeat`` times and the median and best
wall times are printed:

``compose`` (no prefix)
    the workload without a ``prefix`` section, for reference;
``compose + prefix``
    the same spec with 20 system prompts per client (60 % of sessions, Zipf 1) and sessions
    (geometric, mean 3 turns, 60 s think time);
``hash_ids 16 / 512``
    :func:`servegen_core.generate.sessions.hash_ids` of every request at 16 and 512 tokens per block;
``export mooncake / vllm``
    :func:`servegen_core.export.writer.export_trace` of the prefix workload (AIPerf conversations
    with 512-token blocks; vLLM timed_trace with 16-token blocks), to a temporary folder.

Usage::

    python bench/prefix_generate.py [--repeat 5] [--rps 100]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

from servegen_core.generate.compose import compose
from servegen_core.export.writer import export_trace
from servegen_core.sources.pool import load_pool
from servegen_core.paths import shared_data_dir
from servegen_core.generate.sessions import hash_ids
from servegen_core.spec import (
    ClientSelection,
    ConstantRate,
    PrefixProfile,
    PrefixSpec,
    ServeGenSource,
    Sessions,
    Span,
    SystemPrompts,
    WorkloadSpec,
)


def timed(fn, repeat: int) -> tuple[float, float, object]:
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rps", type=float, default=100.0)
    args = ap.parse_args()
    pool = load_pool(shared_data_dir() / "servegen", "language/m-large")
    base = WorkloadSpec(
        source=ServeGenSource(data_dir="shared", model="language/m-large"),
        span=Span(72000, 3600),
        clients=ClientSelection(mode="top_k", k=20),
        rate=ConstantRate(rps=args.rps),
    )
    prefix = PrefixSpec(
        default=PrefixProfile(
            system_prompts=SystemPrompts(count=20, request_share=0.6, zipf_s=1.0, tokens=800),
            sessions=Sessions(turns_mean=3.0, think_mean_s=60.0),
        )
    )
    spec = base.__class__(**{**base.__dict__, "prefix": prefix})
    print(f"{platform.node()} ({platform.machine()}), python {platform.python_version()}; m-large top 20, 1 h at {args.rps:g} req/s")
    rows = []
    med, best, plain = timed(lambda: compose(base, pool=pool), args.repeat)
    rows.append(("compose (no prefix)", med, best, plain.trace.height))
    med, best, work = timed(lambda: compose(spec, pool=pool), args.repeat)
    tr = work.trace
    rows.append(("compose + prefix", med, best, tr.height))
    for block in (16, 512):
        med, best, _ = timed(lambda b=block: hash_ids(tr["segment_ids"], tr["segment_tokens"], block_size=b), args.repeat)
        rows.append((f"hash_ids {block}", med, best, tr.height))
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("mooncake", "vllm"):
            path = Path(tmp) / f"w-{fmt}.jsonl"
            med, best, _ = timed(lambda f=fmt, p=path: export_trace(tr, p, f, overwrite=True, note=None), args.repeat)
            rows.append((f"export {fmt}", med, best, tr.height))
    print("| step | median (s) | best (s) | requests |")
    print("|---|---:|---:|---:|")
    for name, med, best, n in rows:
        print(f"| {name} | {med:.3f} | {best:.3f} | {n:,} |")
    later = int((tr["turn_index"] > 0).sum())
    print(f"later turns: {later:,} of {tr.height:,}")


if __name__ == "__main__":
    main()
