"""The prefix section of a spec and the prefix stage of compose: shared prompts, sessions,
block-size-free segments, hash ids, and fit_prefix on the shared Mooncake trace.

Expected values come from the spec's parameters or from token-level references built here
(a request's tokens as (segment id, offset) pairs), not from the generator's own output.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import ks_2samp

from servegen_core.characterize import prefix as characterize
from servegen_core.generate import stages
from servegen_core.generate.compose import compose, plan_workload
from servegen_core.errors import SpecError
from servegen_core.schema import PREFIX_COLUMNS
from servegen_core.generate.sessions import fit_prefix, hash_ids, prefix_depth
from servegen_core.spec import (
    ConstantRate,
    PrefixProfile,
    PrefixSpec,
    ServeGenSource,
    Sessions,
    Span,
    SystemPrompts,
    TraceSource,
    WorkloadSpec,
)
from servegen_core.sources.traces import load_trace
from servegen_core.generate.validate import validate

PROMPTS = SystemPrompts(count=20, request_share=0.6, zipf_s=1.0, tokens=800, unique_tokens=1)
SESSIONS = Sessions(turns_kind="geometric", turns_mean=3.0, max_turns=30, think_mean_s=60.0, think_cv=1.0)


def _spec(prefix: PrefixSpec | None, *, seed: int = 0, rps: float = 100.0) -> WorkloadSpec:
    return WorkloadSpec(
        source=ServeGenSource(data_dir="shared", model="language/m-large"),
        span=Span(72000, 3600),
        rate=ConstantRate(rps=rps),
        # the clients with length data, as these tests were written for (borrowing is the default)
        missing_lengths="exclude",
        seed=seed,
        prefix=prefix,
    )


@pytest.fixture(scope="module")
def pool(m_large):
    """The session's m-large pool (tests/conftest.py)."""
    return m_large


@pytest.fixture(scope="module")
def top10(pool):
    from servegen_core.spec import ClientSelection

    def make(prefix: PrefixSpec | None, seed: int = 0) -> WorkloadSpec:
        return dataclasses.replace(_spec(prefix, seed=seed), clients=ClientSelection(mode="top_k", k=10))

    return make


@pytest.fixture(scope="module")
def workload(top10, pool):
    spec = top10(PrefixSpec(default=PrefixProfile(system_prompts=PROMPTS, sessions=SESSIONS)))
    return compose(spec, pool=pool)


def _tokens(ids: list[int], toks: list[int]) -> list[tuple[int, int]]:
    """A request's prompt as token identities: (segment id, offset in the segment)."""
    return [(i, k) for i, n in zip(ids, toks) for k in range(n)]


def _common(a: list, b: list) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


# -------------------------------------------------------------------------------- the spec


def test_spec_round_trip_and_absent_section():
    spec = _spec(PrefixSpec(default=PrefixProfile(system_prompts=PROMPTS, sessions=SESSIONS), clients=(("7", PrefixProfile()),)))
    again = WorkloadSpec.from_json(spec.to_json())
    assert again == spec
    assert again.prefix.profile("7") == PrefixProfile()
    assert again.prefix.profile("8").sessions == SESSIONS
    plain = _spec(None)
    assert "prefix" not in json.loads(plain.to_json())
    assert WorkloadSpec.from_json(plain.to_json()) == plain
    pmf = Sessions(turns_kind="pmf", turns_pmf=((1, 0.9), (4, 0.1)))
    assert Sessions(turns_kind="pmf", turns_pmf=((1, 0.9), (4, 0.1))).turn_probabilities() == (0.9, 0.0, 0.0, 0.1)
    assert WorkloadSpec.from_json(_spec(PrefixSpec(default=PrefixProfile(sessions=pmf))).to_json()).prefix.default.sessions == pmf


@pytest.mark.parametrize(
    ("prefix", "key"),
    [
        ({"default": {}}, "prefix.version"),
        ({"version": 2}, "prefix.version"),
        ({"version": 1, "defaults": {}}, "prefix.defaults"),
        ({"version": 1, "default": {"system_prompts": {"count": 0}}}, "prefix.default.system_prompts.count"),
        ({"version": 1, "default": {"system_prompts": {"request_share": 1.2}}}, "prefix.default.system_prompts.request_share"),
        ({"version": 1, "default": {"system_prompts": {"tokens": "all"}}}, "prefix.default.system_prompts.tokens"),
        ({"version": 1, "default": {"system_prompts": {"request_share": 0.8, "min_quantile": 0.5}}}, "prefix.default.system_prompts.min_quantile"),
        ({"version": 1, "default": {"sessions": {"turns": {"kind": "geometric", "mean": 0.5}}}}, "prefix.default.sessions.turns.mean"),
        ({"version": 1, "default": {"sessions": {"turns": {"kind": "pmf", "pmf": [[0, 1.0]]}}}}, "prefix.default.sessions.turns.pmf[0]"),
        ({"version": 1, "default": {"sessions": {"think_time_s": {"mean": -1}}}}, "prefix.default.sessions.think_time_s.mean"),
        ({"version": 1, "clients": {"3": {"sessions": {"turn": {}}}}}, "prefix.clients.3.sessions.turn"),
    ],
)
def test_spec_errors_name_the_key(prefix, key):
    d = json.loads(_spec(None).to_json())
    d["prefix"] = prefix
    with pytest.raises(SpecError) as err:
        WorkloadSpec.from_dict(d)
    assert err.value.key == key


def test_unknown_client_and_multimodal_source_are_refused(servegen_dir):
    spec = _spec(PrefixSpec(clients=(("no-such-client", PrefixProfile(sessions=SESSIONS)),)))
    with pytest.raises(SpecError) as err:
        plan_workload(spec)
    assert err.value.key == "prefix.clients.no-such-client"
    mm = WorkloadSpec(
        source=ServeGenSource(data_dir="shared", model="multimodal/mm-image"),
        span=Span(0, 600),
        prefix=PrefixSpec(default=PrefixProfile(sessions=SESSIONS)),
    )
    with pytest.raises(SpecError) as err:
        plan_workload(mm)
    assert err.value.key == "prefix"


# -------------------------------------------------------------------------------- generation


def test_no_prefix_section_leaves_the_workload_alone(top10, pool):
    plain = compose(top10(None), pool=pool).trace
    assert not set(PREFIX_COLUMNS) & set(plain.columns)
    assert compose(WorkloadSpec.from_json(top10(None).to_json()), pool=pool).trace.equals(plain)


def test_columns_segments_and_turn_order(workload):
    tr = workload.trace
    assert set(PREFIX_COLUMNS) <= set(tr.columns)
    assert tr["timestamp_s"].is_sorted()
    assert (tr["segment_tokens"].list.sum().fill_null(0) == tr["input_tokens"]).all()
    # every client has sessions: ids everywhere, turns 0..T-1 in time order, inputs not shrinking
    assert tr["session_id"].null_count() == 0
    per = tr.group_by("session_id").agg("turn_index", "timestamp_s", "input_tokens", "client_id")
    assert (per["turn_index"].list.eval(pl.element() == pl.int_range(pl.len())).list.all()).all()
    assert (per["timestamp_s"].list.eval(pl.element().diff().fill_null(0) >= 0).list.all()).all()
    assert (per["input_tokens"].list.eval(pl.element().diff().fill_null(0) >= 0).list.all()).all()
    assert (per["client_id"].list.n_unique() == 1).all()


def test_each_turn_extends_the_previous_context(workload):
    """Turn j holds h = min(x_{j-1} + o_{j-1}, x_j - 1) tokens of (turn j-1's prompt, then its
    output) and then new tokens: checked on token identities for a sample of sessions."""
    tr = workload.trace.with_row_index("row")
    multi = tr.filter(pl.col("turn_index") >= 1)["session_id"].unique().sort().head(300)
    rows = tr.filter(pl.col("session_id").is_in(multi.implode())).sort("session_id", "turn_index")
    kept = truncated = 0
    for (_sid,), g in rows.group_by("session_id", maintain_order=True):
        recs = g.to_dicts()
        for prev, cur in zip(recs, recs[1:]):
            a = _tokens(prev["segment_ids"], prev["segment_tokens"])
            b = _tokens(cur["segment_ids"], cur["segment_tokens"])
            ctx = prev["input_tokens"] + prev["output_tokens"]
            h = max(0, min(ctx, cur["input_tokens"] - 1))
            assert _common(a, b) == min(len(a), h)
            # tokens after the previous prompt up to h are the previous output: one segment
            # that no earlier turn holds
            if h > len(a):
                out_ids = {i for i, _ in b[len(a) : h]}
                assert len(out_ids) == 1 and not out_ids & {i for i, _ in a}
            assert len({i for i, _ in b[h:]} & {i for i, _ in a}) == 0
            kept += h == ctx
            truncated += h < ctx
    assert kept > 100 and truncated >= 0


def test_turns_and_think_times_follow_the_spec(workload):
    tr = workload.trace
    end = workload.plan.span_duration_s
    turns = tr.group_by("session_id").agg(pl.len().alias("n"), pl.col("timestamp_s").min().alias("t0"))
    # sessions that began in the first half of the span are (almost) never cut by its end
    early = turns.filter(pl.col("t0") < end / 2)["n"].to_numpy()
    q = 1 - 1 / SESSIONS.turns_mean
    k = np.arange(1, SESSIONS.max_turns + 1)
    mean_t = float(((1 - q) * q ** (k - 1) * k).sum() / ((1 - q) * q ** (k - 1)).sum())
    assert abs(early.mean() / mean_t - 1) < 0.03
    gaps = (
        tr.sort("session_id", "turn_index")
        .with_columns(pl.col("timestamp_s").diff().over("session_id").alias("gap"))
        .filter(pl.col("turn_index") > 0)["gap"]
        .to_numpy()
    )
    # gaps are Gamma(mean 60 s, cv 1), cut at the span end (which favours short gaps a little)
    assert abs(gaps.mean() / SESSIONS.think_mean_s - 1) < 0.05
    assert abs(gaps.std() / gaps.mean() - SESSIONS.think_cv) < 0.05


def test_validation_with_sessions(workload):
    """Session starts keep each client's arrival pattern (CV), the workload still follows the
    rate function window by window, and every client's input marginal is its PDF."""
    report = validate(workload)
    checks = {r["name"]: r for r in report.checks.to_dicts()}
    for name in ("total_requests", "client_share", "cv_ratio"):
        assert checks[name]["passed"], checks[name]
    assert checks["cv_ratio"]["n"] >= 10
    later = int((workload.trace["turn_index"] > 0).sum())
    assert later > 0.4 * workload.trace.height  # the check really covers many later turns
    # the rate tracking's tolerance accounts for sessions: counts of clustered requests vary
    # sum(s^2)/sum(s) times a Poisson count's (about 4.8 here), so the bound is the counts' noise
    sizes = workload.trace.group_by("session_id").len()["len"].to_numpy().astype(float)
    factor = (sizes**2).sum() / sizes.sum()
    assert f"{factor:.2f}x a Poisson count's" in checks["rate_tracking"]["detail"]
    assert checks["rate_tracking"]["high"] >= 0.02


def test_sessions_keep_the_input_marginal_and_the_request_total(workload):
    """Every client's input (and output) marginal is its PDF although the span end cuts the
    last sessions short (only their turns inside the span are sorted by input), and the
    request total is within 1 % of the rate function's integral."""
    report = validate(workload)
    for name in ("total_requests", "length_ks", "prefix_input_ks"):
        assert report.check(name)["passed"], report.check(name)
    assert report.check("prefix_input_ks")["n"] >= 5
    assert abs(report.check("total_requests")["value"] - 1) < 0.01


def test_a_steep_rate_fall_keeps_the_request_total(top10, pool):
    """With 600 s think times, client 104's rate falls from 23,893 to 1,396 requests per window
    faster than its earlier sessions' turns fade: its last windows need no session starts at all,
    and still get more turns than their targets. Its earlier windows start fewer sessions instead
    (forward substitution alone clipped the starts at 0 and the workload came out 5.1 % over the
    rate function's integral, client 104 8.6 % over its own)."""
    slow = dataclasses.replace(SESSIONS, think_mean_s=600.0)
    spec = top10(PrefixSpec(default=PrefixProfile(system_prompts=PROMPTS, sessions=slow)))
    w = compose(spec, pool=pool)
    plain = plan_workload(dataclasses.replace(spec, prefix=None), pool=pool).units
    target = plain.row_expected[plain.row_client == list(plain.client_ids).index("104")].sum()
    assert target > 20_000
    got = w.trace.filter(pl.col("client_id") == "104").height
    assert abs(got / target - 1) < 0.01, (got, target)
    assert abs(w.trace.height / (100.0 * 3600) - 1) < 0.01
    assert abs(validate(w).check("total_requests")["value"] - 1) < 0.01


def test_a_cut_session_keeps_its_smallest_inputs_unbiased(top10, pool):
    """The span end cuts sessions short: the turns kept are i.i.d. draws put in order, so the
    last window's first turns are no smaller than its later turns' share would make them."""
    spec = top10(PrefixSpec(default=PrefixProfile(sessions=SESSIONS)), seed=2)
    tr = compose(dataclasses.replace(spec, span=Span(72000, 1200)), pool=pool).trace
    # sessions starting in the last 60 s are almost all cut; their kept turns' input marginal
    # equals that of sessions starting early (which the span holds whole)
    t0 = tr.group_by("session_id").agg(pl.col("timestamp_s").min().alias("t0"))
    busiest = tr["client_id"].value_counts(sort=True)["client_id"][0]
    x = tr.filter(pl.col("client_id") == busiest).join(t0, on="session_id")
    late = x.filter(pl.col("t0") > 1140)["input_tokens"].to_numpy()
    early = x.filter(pl.col("t0") < 400)["input_tokens"].to_numpy()
    assert len(late) > 1000
    assert ks_2samp(late, early).pvalue > 0.001


def test_prompt_popularity_and_lengths(workload):
    """First turns use a prompt with the spec's share (those long enough to hold a token of
    it); prompt i's share among prompted sessions follows i ** -zipf_s."""
    first = workload.trace.filter(pl.col("turn_index") == 0)
    head = first.select(pl.col("segment_ids").list.first().alias("h"), pl.col("segment_tokens").list.len().alias("k"), "client_id", "input_tokens")
    # a prompted first turn has two segments (prompt, own tokens) when its input exceeds 1 token
    prompted = head.filter(pl.col("k") == 2)
    long_enough = head.filter(pl.col("input_tokens") > 1)
    share = prompted.height / long_enough.height
    assert abs(share - PROMPTS.request_share) < 0.02
    counts = prompted.group_by("client_id", "h").agg(pl.len().alias("n")).sort("client_id", "n", descending=[False, True])
    ranked = counts.with_columns(pl.int_range(pl.len()).over("client_id").alias("rank")).group_by("rank").agg(pl.col("n").sum()).sort("rank")
    n = ranked["n"].to_numpy().astype(float)
    expect = np.arange(1, PROMPTS.count + 1) ** -PROMPTS.zipf_s
    assert len(n) == PROMPTS.count
    assert np.abs(n / n.sum() - expect / expect.sum()).max() < 0.02
    # the prompt segment is min(tokens, x - unique_tokens) long
    first_tok = first.filter(pl.col("segment_tokens").list.len() == 2)
    assert (first_tok["segment_tokens"].list.first() == (first_tok["input_tokens"] - 1).clip(upper_bound=PROMPTS.tokens)).all()


def test_same_bytes_and_chunks_equal_whole(top10, pool):
    spec = top10(PrefixSpec(default=PrefixProfile(system_prompts=PROMPTS, sessions=SESSIONS)), seed=3)
    spec = dataclasses.replace(spec, span=Span(72000, 1800))
    whole = compose(spec, pool=pool).trace
    assert compose(spec, pool=pool).trace.equals(whole)
    plan = plan_workload(spec, pool=pool)
    for chunk_s in (250.0, 600.0, 1000.0):
        chunks = list(plan.iter_chunks(chunk_s))
        assert len(chunks) > 1
        assert pl.concat(chunks).equals(whole)
    other = compose(dataclasses.replace(spec, seed=4), pool=pool).trace
    assert not other.equals(whole)


# -------------------------------------------------------------------------------- hash ids


@pytest.mark.parametrize("block", [16, 64, 512])
def test_hash_ids_preserve_sharing_at_any_block_size(workload, block):
    """Two requests sharing exactly their first X tokens share exactly their first
    floor(X / B) ids (and the partial last block too when both are those X tokens)."""
    tr = workload.trace.head(4000)
    ids = hash_ids(tr["segment_ids"], tr["segment_tokens"], block_size=block)
    assert (ids.list.len() == (tr["input_tokens"] + block - 1) // block).all()
    # pairs with real sharing: consecutive turns of a session and first turns of one prompt
    recs = tr.select("segment_ids", "segment_tokens", "session_id", "turn_index").to_dicts()
    hid = ids.to_list()
    by_head: dict[int, list[int]] = {}
    for i, r in enumerate(recs):
        if r["segment_ids"]:
            by_head.setdefault(r["segment_ids"][0], []).append(i)
    pairs = [(v[a], v[a + 1]) for v in by_head.values() for a in range(len(v) - 1)][:1500]
    rng = np.random.default_rng(0)
    pairs += [tuple(rng.choice(len(recs), 2, replace=False)) for _ in range(200)]
    shared_any = 0
    for i, j in pairs:
        a = _tokens(recs[i]["segment_ids"], recs[i]["segment_tokens"])
        b = _tokens(recs[j]["segment_ids"], recs[j]["segment_tokens"])
        x = _common(a, b)
        want = x // block
        if x == len(a) == len(b) and x % block:
            want += 1
        assert _common(hid[i], hid[j]) == want
        shared_any += want > 0
    assert shared_any > 500


# -------------------------------------------------------------------------------- fit


def _reuse(lists: list[list[int]]) -> float:
    seen: set[int] = set()
    total = reused = 0
    for h in lists:
        total += len(h)
        reused += sum(1 for b in h if b in seen)
        seen.update(h)
    return reused / total


def _lru(lists: list[list[int]], capacity: int) -> float:
    cache: OrderedDict[int, None] = OrderedDict()
    hits = total = 0
    for h in lists:
        for b in h:
            total += 1
            if b in cache:
                hits += 1
                cache.move_to_end(b)
            else:
                cache[b] = None
                if len(cache) > capacity:
                    cache.popitem(last=False)
    return hits / total


@pytest.fixture(scope="module")
def mooncake(traces_dir: Path):
    path = traces_dir / "mooncake_synthetic_trace.jsonl"
    return path, load_trace(path).trace


def test_prefix_depth_matches_a_set_walk(mooncake):
    _path, tr = mooncake
    depth = prefix_depth(tr).to_list()
    seen: set[int] = set()
    for h, d in zip(tr["hash_ids"].to_list(), depth):
        k = 0
        while k < len(h) and h[k] in seen:
            k += 1
        assert d == k
        seen.update(h)


def test_fit_on_mooncake_reproduces_its_reuse(mooncake):
    """A workload composed from the Mooncake trace with the fitted prefix section reuses
    blocks (512 tokens) like the trace, measured with servegen_core.characterize.prefix (checked here
    against a plain set walk and an OrderedDict LRU): reuse ratio within 10 % for every
    seed, and LRU hit ratios (mean of three seeds) within 10 % at 1,000, 10,000 and 30,000
    blocks (at 1,000 1.007x since the locality fit is unbiased; it was about 12 % low). At
    3,000 blocks see the strict xfail below.
    The block-detected "sessions" of the trace (repeated documents whose input grows less
    than the previous output) are not taken for conversations."""
    path, tr = mooncake
    fitted = fit_prefix(tr, block_size=512)
    sp = fitted.default.system_prompts
    assert fitted.default.sessions is None  # the trace's reuse is documents, not conversations
    assert sp is not None and sp.tokens == "input" and sp.lengths == ()  # documents: requests differ in a short tail
    heads = tr["hash_ids"].list.first()
    sizes = heads.value_counts()["count"]
    assert sp.count == int((sizes >= 2).sum())
    assert sp.request_share == pytest.approx(float(sizes.filter(sizes >= 2).sum()) / tr.height)
    caps = np.array([1000, 3000, 10000, 30000])
    src_reuse = characterize.block_reuse(tr).reuse_ratio
    assert src_reuse == pytest.approx(_reuse(tr["hash_ids"].to_list()))
    src_hits = characterize.lru_hit_ratio(tr).at(caps)
    assert src_hits[0] == pytest.approx(_lru(tr["hash_ids"].to_list(), 1000))
    gen_hits = []
    for seed in range(3):
        spec = WorkloadSpec(source=TraceSource(path=str(path), per_client=False), span=Span(0, None), seed=seed, prefix=fitted)
        w = compose(spec).trace
        assert abs(w.height / tr.height - 1) < 0.05
        w = w.with_columns(hash_ids(w["segment_ids"], w["segment_tokens"], block_size=512))
        assert abs(characterize.block_reuse(w).reuse_ratio / src_reuse - 1) < 0.10
        gen_hits.append(characterize.lru_hit_ratio(w).at(caps))
    ratio = np.mean(gen_hits, axis=0) / src_hits
    assert np.all(np.abs(ratio[[0, 2, 3]] - 1) < 0.10), ratio


@pytest.mark.xfail(strict=True, reason=(
    "Mooncake, mean of seeds 0-2: the LRU hit ratio at 3,000 blocks is 1.115x the source's (1.007 / 1.007 / 0.990 "
    "at 1k / 10k / 30k): the fitted locality (share 0.19, one geometric lag of mean 65.5 prompted requests) "
    "gives back its own share and lag through the fit, but its recurrence curve is 9-27 % above the trace's "
    "at 10-100 prompted requests back (0.37 vs 0.335 at 100): one geometric lag is not the trace's lag shape"
))
def test_fit_on_mooncake_keeps_the_lru_hit_ratio_at_3000_blocks(mooncake):
    path, tr = mooncake
    fitted = fit_prefix(tr, block_size=512)
    gen_hits = []
    for seed in range(3):
        spec = WorkloadSpec(source=TraceSource(path=str(path), per_client=False), span=Span(0, None), seed=seed, prefix=fitted)
        w = compose(spec).trace
        w = w.with_columns(hash_ids(w["segment_ids"], w["segment_tokens"], block_size=512))
        gen_hits.append(characterize.lru_hit_ratio(w).at(np.array([3000]))[0])
    assert abs(np.mean(gen_hits) / characterize.lru_hit_ratio(tr).at(np.array([3000]))[0] - 1) < 0.10


def test_fit_sessions_from_session_ids(workload):
    """fit_prefix measures sessions from session_id: the turn pmf and think-time mean of a
    generated workload come back (its sessions began in the first half, so few are cut)."""
    tr = workload.trace
    t0 = tr.group_by("session_id").agg(pl.col("timestamp_s").min().alias("t0"))
    keep = t0.filter(pl.col("t0") < workload.plan.span_duration_s / 2)["session_id"]
    part = tr.filter(pl.col("session_id").is_in(keep.implode()))
    part = part.with_columns(hash_ids(part["segment_ids"], part["segment_tokens"], block_size=16))
    fitted = fit_prefix(part, block_size=16).default.sessions
    assert fitted is not None
    assert abs(fitted.think_mean_s / SESSIONS.think_mean_s - 1) < 0.05
    probs = np.array(fitted.turn_probabilities())
    mean_t = float((np.arange(1, len(probs) + 1) * probs).sum())
    assert abs(mean_t / 3.0 - 1) < 0.05


def test_busy_windows_cut_into_units_keep_sessions_apart(top10, pool, monkeypatch):
    """When compose cuts a busy window into generation units, every unit draws its own
    sessions: session starts stay distinct (one session_id per first turn, no own-token
    segment shared by two sessions) and chunked generation still equals the whole."""
    monkeypatch.setattr(stages, "UNIT_REQUESTS", 4000)
    spec = dataclasses.replace(
        top10(PrefixSpec(default=PrefixProfile(system_prompts=PROMPTS, sessions=SESSIONS)), seed=5),
        span=Span(72000, 1200),
    )
    plan = plan_workload(spec, pool=pool)
    assert int(plan.units.piece.max()) >= 1  # the windows really are cut
    tr = plan.compose().trace
    first = tr.filter(pl.col("turn_index") == 0)
    assert first["session_id"].n_unique() == first.height
    own = first.select(pl.col("segment_ids").list.last().alias("own"), "session_id")
    assert own["own"].n_unique() == own.height
    assert pl.concat(list(plan.iter_chunks(300.0))).equals(tr)


def test_fit_per_client_recovers_each_clients_profile(top10, pool):
    """Two clients composed with different prompt shares and one with sessions come back
    from fit_prefix(per_client=True) with their own shares (within 0.03) and sessions."""
    spec = top10(None)
    plan = plan_workload(spec, pool=pool)
    a, b = plan.clients[0], plan.clients[1]
    profiles = (
        (a, PrefixProfile(system_prompts=dataclasses.replace(PROMPTS, request_share=0.3, tokens=600))),
        (b, PrefixProfile(system_prompts=dataclasses.replace(PROMPTS, request_share=0.8, tokens=600), sessions=SESSIONS)),
    )
    spec = dataclasses.replace(spec, prefix=PrefixSpec(clients=profiles), span=Span(72000, 1800))
    tr = compose(spec, pool=pool).trace.filter(pl.col("client_id").is_in([a, b]))
    tr = tr.with_columns(hash_ids(tr["segment_ids"], tr["segment_tokens"], block_size=16))
    fitted = fit_prefix(tr, block_size=16, per_client=True)
    got = dict(fitted.clients)
    assert set(got) == {a, b}
    assert got[a].sessions is None and got[b].sessions is not None
    # prompted first turns long enough to hold a whole 16-token block of their prompt
    for cid, share in ((a, 0.3), (b, 0.8)):
        first = tr.filter((pl.col("client_id") == cid) & (pl.col("turn_index") == 0) & (pl.col("input_tokens") > 17))
        assert abs(got[cid].system_prompts.request_share * tr.filter((pl.col("client_id") == cid) & (pl.col("turn_index") == 0)).height / first.height - share) < 0.05
