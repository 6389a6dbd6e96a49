"""``servegen whatif --workers``: two forkserver worker processes by default, the same answer as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from _cli import run

import servegen_core.serve.whatif as wi
from servegen_core.cli.parser import WHATIF_WORKERS, build_parser
from servegen_core.limits import max_workers

ROOT = Path(__file__).resolve().parents[2]
#: A small workload: ten minutes of the demo chat model at 10 req/s (about 6,000 requests).
SPEC = {
    "schema_version": 1,
    "source": {"kind": "servegen", "data_dir": "demo", "model": "language/demo-chat"},
    "span": {"start_s": 0, "duration_s": 600},
    "rate": {"kind": "constant", "rps": 10.0},
    "seed": 3,
}
ARGS = ["--model", "llama-3-8b", "--gpu", "a100", "--slo-ttft-p99", "4", "--slo-tpot-p99", "0.1",
        "--baselines", "poisson", "--no-range", "-q", "--json"]


def test_the_default_is_two_workers_and_the_help_says_so(capsys) -> None:
    args = build_parser().parse_args(["whatif", "--spec", "spec.json", "--model", "llama-3-8b", "--gpu", "a100"])
    assert args.workers == WHATIF_WORKERS == min(2, max_workers()) == 2
    assert build_parser().parse_args(["whatif", "--spec", "s.json", "--model", "llama-3-8b", "--gpu", "a100", "--workers", "1"]).workers == 1
    try:
        build_parser().parse_args(["whatif", "--help"])
    except SystemExit:
        pass
    text = " ".join(capsys.readouterr().out.split())
    assert "(default 2: forkserver worker processes, the same answer as --workers 1 in one process;" in text


def test_the_default_gives_the_answer_of_one_process(capsys, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    pools: list[int] = []
    real_pool = wi.worker_pool

    def counted(workers: int):
        pools.append(workers)
        return real_pool(workers)

    monkeypatch.setattr(wi, "worker_pool", counted)
    code, serial, _ = run(capsys, "whatif", "--spec", path, *ARGS, "--workers", "1")
    assert code == 0
    code, default, _ = run(capsys, "whatif", "--spec", path, *ARGS)
    assert code == 0
    assert pools == [1, 2]  # the default run did use two worker processes
    answer = json.loads(serial)
    assert answer["table"][0]["replicas"] >= 2 and len(answer["curves"]) >= 3  # a search over several counts
    assert default == serial
    # the module entry point (``python -m servegen_core``) is safe for forkserver workers: same bytes
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "servegen_core", "whatif", "--spec", str(path), *ARGS],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == serial
