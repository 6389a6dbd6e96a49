"""Execution engines: where the core's per-unit work runs.

``local`` (the default) runs everything in this process. ``ray``
(:mod:`servegen_core.engines.ray`, the optional extra ``pip install servegen-core[ray]``) runs
the same core functions as Ray tasks, on a local Ray instance or on the cluster named by
``$SERVEGEN_RAY_ADDRESS``; the results are byte-identical to the local engine's.
"""

from __future__ import annotations

__all__ = ["ENGINES"]

#: The engines the CLI's ``--engine`` accepts.
ENGINES: tuple[str, ...] = ("local", "ray")
