"""Parse a ``python -m vidur.main`` command line with Vidur's own parser and read its trace file.

Run under Vidur's interpreter (``.venv-vidur/bin/python parse_vidur_command.py ARGS...``, the
arguments after ``python -m vidur.main``): ``SimulationConfig.create_from_cli_args`` builds the
configuration as ``vidur.main`` does, then Vidur's ``TraceReplayRequestGenerator`` reads the file
(date filter, scale factors, clipping, ``max_tokens``) and ``generate_requests`` gives the requests
Vidur would simulate. Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

from vidur.config import SimulationConfig
from vidur.request_generator.trace_replay_request_generator import TraceReplayRequestGenerator


def main(argv: list[str]) -> int:
    work = tempfile.mkdtemp(prefix="vidur-")
    os.chdir(work)  # Vidur's config makes simulator_output/ in the working folder: a temporary one, removed
    sys.argv = ["vidur.main", *argv]
    try:
        config = SimulationConfig.create_from_cli_args()
    finally:
        os.chdir("/")
        shutil.rmtree(work, ignore_errors=True)
    gen = config.request_generator_config
    requests = TraceReplayRequestGenerator(gen).generate_requests()
    print(json.dumps({
        "type": type(gen).__name__,
        "model": config.cluster_config.replica_config.model_name,
        "path": gen.trace_file,
        "max_tokens": gen.max_tokens,
        "scale": [gen.prefill_scale_factor, gen.decode_scale_factor, gen.time_scale_factor],
        "rows": [[float(r.arrived_at), int(r.num_prefill_tokens), int(r.num_decode_tokens)] for r in requests],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
