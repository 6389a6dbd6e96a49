"""Golden outputs: the SHA-256 of exports, spec files and JSON reports of a few fixed specs.

These pin the bytes the ``servegen`` command writes, so that a change that only reorganizes
code (moving modules, splitting functions, renaming) provably changes no output. A change that
is meant to change an output updates the pinned digest in the same commit and says why.

Run ``python tests/test_golden.py`` to print the current digests (to review a deliberate change).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from servegen_core.cli import main

PROJECT = Path(__file__).resolve().parents[1]
DEMO_FORMATS = ("parquet", "csv", "jsonl", "mooncake", "vllm", "guidellm", "vidur", "splitwise", "burstgpt", "azure", "blis")


def _specs(shared: Path) -> dict[str, dict]:
    traces = shared / "traces"
    return {
        "mlarge": {
            "schema_version": 1,
            "source": {"kind": "servegen", "data_dir": "shared", "model": "language/m-large"},
            "span": {"start_s": 72000, "duration_s": 600},
            "clients": {"mode": "all"},
            "weights": {"mode": "observed"},
            "rate": {"kind": "observed", "factor": 1.0},
            "arrivals": "fitted",
            "lengths": "client",
            "missing_lengths": "borrow",
            "length_correlation": 0.0,
            "seed": 0,
        },
        "demo": {
            "schema_version": 1,
            "source": {"kind": "servegen", "data_dir": "demo", "model": "language/demo-chat"},
            "span": {"start_s": 43200, "duration_s": 900},
            "clients": {"mode": "top_k", "k": 5, "by": "request_share"},
            "weights": {"mode": "observed"},
            "rate": {"kind": "constant", "rps": 8.0},
            "arrivals": "fitted",
            "lengths": "client",
            "missing_lengths": "borrow",
            "length_correlation": 0.2,
            "seed": 3,
        },
        "demo_r1": {
            "schema_version": 1,
            "source": {"kind": "servegen", "data_dir": "demo", "model": "reason/demo-r1"},
            "span": {"start_s": 36000, "duration_s": 600},
            "clients": {"mode": "all"},
            "weights": {"mode": "observed"},
            "rate": {"kind": "ramp", "start_rps": 2.0, "end_rps": 12.0},
            "arrivals": "fitted",
            "arrival_shape": "fitted_shape",
            "lengths": "pooled",
            "missing_lengths": "borrow",
            "length_correlation": 0.0,
            "seed": 1,
        },
        "trace_prefix": None,  # written by spec-template --fit-prefix below
        "azure": {
            "schema_version": 1,
            "source": {"kind": "trace", "path": str(traces / "AzureLLMInferenceTrace_conv.csv"), "preset": "azure", "per_client": True},
            "span": {"start_s": 0, "duration_s": 900},
            "clients": {"mode": "all"},
            "weights": {"mode": "observed"},
            "rate": {"kind": "observed", "factor": 1.0},
            "arrivals": "empirical",
            "lengths": "client",
            "missing_lengths": "borrow",
            "length_correlation": 0.1,
            "seed": 0,
        },
    }


def _text_sha(text: str, shared: Path, work: Path | None = None) -> str:
    """Digest of a text output with the shared data's location written as ``<SHARED>``.

    Specs and reports record absolute paths; the digest must not depend on where the checkout
    or the temporary folder is.
    """
    if work is not None:
        text = text.replace(str(work), "<WORK>")
    text = text.replace(str(shared.resolve()), "<SHARED>")
    text = text.replace(str(PROJECT), "<PROJECT>")
    return hashlib.sha256(text.encode()).hexdigest()


def _sha(path: Path, shared: Path | None = None) -> str:
    if shared is not None:
        return _text_sha(path.read_text(encoding="utf-8"), shared)
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(p.relative_to(path).as_posix().encode())
                h.update(hashlib.sha256(p.read_bytes()).digest())
        return h.hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(*argv: object) -> tuple[int, str]:
    import contextlib
    import io

    out = io.StringIO()
    err = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    if code not in (0, 1):
        sys.stderr.write(err.getvalue())
    return code, out.getvalue()


def golden_digests(shared: Path, work: Path) -> dict[str, str]:
    """Write every golden output under ``work`` and return name -> SHA-256."""
    digests: dict[str, str] = {}
    specs = _specs(shared)
    work.mkdir(parents=True, exist_ok=True)
    shared = shared.resolve()
    traces = shared / "traces"
    prefix_spec = work / "trace_prefix.json"
    code, _ = _run(
        "spec-template", "--trace", traces / "mooncake_synthetic_trace.jsonl", "--fit-prefix",
        "-o", prefix_spec,
    )
    assert code == 0
    digests["spec-template/trace_prefix.json"] = _sha(prefix_spec, shared)
    for name, spec in specs.items():
        if spec is not None:
            (work / f"{name}.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
    plan = {
        "mlarge": ("mooncake", "csv"),
        "demo": DEMO_FORMATS,
        "demo_r1": ("csv", "jsonl"),
        "trace_prefix": ("mooncake", "vllm", "csv", "jsonl"),
        "azure": ("csv",),
    }
    ext = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl", "mooncake": "jsonl", "vllm": "jsonl",
           "guidellm": "jsonl", "vidur": "csv", "splitwise": "csv", "burstgpt": "csv",
           "azure": "csv", "blis": "csv"}
    for name, formats in plan.items():
        for fmt in formats:
            out = work / f"{name}.{fmt}.{ext[fmt]}"
            code, _ = _run("generate", "--spec", work / f"{name}.json", "-f", fmt, "-o", out, "-q")
            assert code == 0, (name, fmt)
            digests[f"generate/{name}/{fmt}"] = _sha(out)
            digests[f"generate/{name}/{fmt}.spec.json"] = _sha(Path(f"{out}.spec.json"), shared)
    out = work / "demo.chunked.parquet"
    code, _ = _run("generate", "--spec", work / "demo.json", "-f", "parquet", "--chunk-s", 300, "-o", out, "-q")
    assert code == 0
    digests["generate/demo/parquet-chunked"] = _sha(out)
    for naive in ("poisson", "pooled_lengths", "poisson_pooled", "constant"):
        out = work / f"demo.{naive}.csv"
        code, _ = _run("generate", "--spec", work / "demo.json", "-f", "csv", "--naive", naive, "-o", out, "-q")
        assert code == 0
        digests[f"generate/demo/naive-{naive}"] = _sha(out)
    for name in ("mlarge", "demo", "demo_r1", "trace_prefix", "azure"):
        code, text = _run("validate", "--spec", work / f"{name}.json", "--json")
        assert code in (0, 1), name
        digests[f"validate/{name}"] = _text_sha(text, shared, work)
    code, text = _run(
        "whatif", "--spec", work / "demo.json", "--model", "llama-3-8b", "--gpu", "a100",
        "--slo-ttft-p99", 2, "--json", "-q",
    )
    assert code == 0
    digests["whatif/demo"] = _text_sha(text, shared, work)
    code, text = _run(
        "whatif", "--spec", work / "demo_r1.json", "--model", "qwen2.5-7b", "--gpu", "h100",
        "--slo-ttft-p99", 1, "--slo-tpot-p99", 0.1, "--chunked-prefill", "--json", "-q",
    )
    assert code == 0
    digests["whatif/demo_r1"] = _text_sha(text, shared, work)
    for source in (["demo", "--model", "language/demo-chat"], [traces / "mooncake_synthetic_trace.jsonl"]):
        code, text = _run("summary", *source, "--json")
        assert code == 0
        digests[f"summary/{Path(str(source[0])).name}"] = _text_sha(text, shared, work)
    return digests


GOLDEN_FILE = Path(__file__).with_name("golden_digests.json")


def test_outputs_are_byte_identical(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = json.loads(GOLDEN_FILE.read_text(encoding="utf-8"))
    got = golden_digests(shared_data, tmp_path)
    assert sorted(got) == sorted(expected)
    changed = [name for name in expected if got[name] != expected[name]]
    assert not changed, f"outputs changed: {changed}"


if __name__ == "__main__":  # pragma: no cover - prints the digests of this checkout
    import tempfile

    from servegen_core.paths import shared_data_dir

    with tempfile.TemporaryDirectory() as tmp:
        result = golden_digests(shared_data_dir(), Path(tmp))
    text = json.dumps(result, indent=1, sort_keys=True) + "\n"
    if "--write" in sys.argv:
        GOLDEN_FILE.write_text(text, encoding="utf-8")
    sys.stdout.write(text)
