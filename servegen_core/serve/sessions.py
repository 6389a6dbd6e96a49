"""Sessions in the serving simulator: closed-loop turns, as AIPerf replays conversations.

A workload with sessions has a ``session_id`` and a ``turn_index`` column. In the ``"closed"``
mode of :func:`~servegen_core.serve.simulate.simulate` (the default, :data:`SESSION_MODES`) a
session's first turn arrives at its timestamp and every later turn is released its *think
time* after the simulated response to the previous turn completes, as AIPerf 0.13.0 sends a
conversation's next turn (``timing/strategies/fixed_schedule.py``: on the previous turn's
credit return, the next turn is scheduled ``delay_ms`` later). The think time of a turn is the
gap between its timestamp and its previous turn's timestamp in the workload (the composer draws
turn ``j``'s timestamp a Gamma think time after turn ``j - 1``'s), so under load the response
time is no longer part of it. In the ``"open"`` mode every request arrives at its timestamp.

Closed-loop sessions are routed whole: a session's turns go to the replica its first turn is
routed to (session affinity), so every replica stays a simulation of its own. Requests the
model's context refuses are left out before the links are made (a refused turn answers at
once): the next served turn follows the previous served one after the sum of the think times
between them, and a session whose first turns are refused starts at its first served turn's
timestamp. A turn the cache can never hold is rejected when it reaches an empty server; the
next turn is released its think time after that.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from servegen_core.errors import SpecError

__all__ = ["SESSION_MODES", "check_session_mode", "has_sessions", "session_roots", "turn_predecessors"]

#: Session modes of the simulator: ``"closed"`` (a later turn waits for the previous response)
#: and ``"open"`` (every request at its timestamp).
SESSION_MODES = ("closed", "open")


def check_session_mode(sessions: str) -> str:
    """``sessions`` if it is one of :data:`SESSION_MODES`, else :class:`SpecError` (key ``sessions``)."""
    if sessions not in SESSION_MODES:
        raise SpecError("sessions", f"must be one of {', '.join(SESSION_MODES)}, got {sessions!r}")
    return sessions


def has_sessions(requests: pl.DataFrame) -> bool:
    """Whether ``requests`` has the ``session_id`` and ``turn_index`` columns of sessions."""
    return {"session_id", "turn_index"} <= set(requests.columns)


def turn_predecessors(requests: pl.DataFrame) -> np.ndarray:
    """The row of each row's previous turn in its session (``-1``: a first turn, or no session).

    Rows sharing a non-null ``session_id`` are one session, ordered by ``turn_index`` (then by
    ``timestamp_s``, then by row); a row's previous turn is the one before it in that order.
    Rows without the columns, or with a null ``session_id``, have none. :class:`SpecError` when
    a turn's timestamp is earlier than its previous turn's (naming the row and session).
    """
    n = requests.height
    pred = np.full(n, -1, dtype=np.int64)
    if n == 0 or not has_sessions(requests):
        return pred
    sid = requests["session_id"]
    valid = ~sid.is_null().to_numpy()
    if not valid.any():
        return pred
    codes = sid.cast(pl.String).rank("dense").fill_null(0).cast(pl.Int64).to_numpy()
    turn = requests["turn_index"].cast(pl.Int64).fill_null(0).to_numpy()
    t = requests["timestamp_s"].cast(pl.Float64).to_numpy()
    rows = np.flatnonzero(valid)
    order = rows[np.lexsort((rows, t[rows], turn[rows], codes[rows]))]
    same = codes[order[1:]] == codes[order[:-1]]
    pred[order[1:][same]] = order[:-1][same]
    later = np.flatnonzero(pred >= 0)
    back = later[t[later] < t[pred[later]]]
    if len(back):
        r = int(back[0])
        msg = f"row {r + 1}: turn {int(turn[r])} of session {sid[r]!r} is earlier than its previous turn (row {int(pred[r]) + 1})"
        raise SpecError("session_id", msg)
    return pred


def session_roots(pred: np.ndarray) -> np.ndarray:
    """The first turn of every row's session (itself for a first turn), following ``pred``
    (:func:`turn_predecessors`) by pointer doubling."""
    idx = np.arange(len(pred), dtype=np.int64)
    root = np.where(pred >= 0, pred, idx)
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt
