"""Fault injection and fault classification for the actors of a run.

`maybe_fail(point)` is the hook the fault-injection tests arm: when the environment variable
`CONREC_FAULT_<POINT>` names an existing file, the first process to reach the point removes the file
and dies at once (`os._exit`, as an OOM kill or a lost node would), so each armed fault fires once.
Points: `rollout_generate`, `rollout_sync`, `reward_score`, `learner_update`. Unarmed, a hook is one dict lookup.

`CONREC_HOLD_<POINT>` naming an existing file holds every process that reaches the point until the file is
removed (each writes `<file>.<pid>` on arrival): a test can then take a whole node away mid-call.
"""

from __future__ import annotations

import os
import time

import ray


def maybe_fail(point: str) -> None:
    hold = os.environ.get(f"CONREC_HOLD_{point.upper()}")
    if hold and os.path.exists(hold):
        with open(f"{hold}.{os.getpid()}", "w") as f:
            f.write(point)
        while os.path.exists(hold):
            time.sleep(0.1)
    path = os.environ.get(f"CONREC_FAULT_{point.upper()}")
    if not path:
        return
    try:
        os.unlink(path)  # exactly one process wins the file, so exactly one dies
    except FileNotFoundError:
        return
    os._exit(17)


def actor_lost(err: BaseException) -> bool:
    """True when a Ray call failed because its actor process died or became unreachable (restartable),
    not because the method raised (a bug or bad input, which must surface)."""
    return isinstance(err, ray.exceptions.RayActorError)  # ActorDiedError, ActorUnavailableError


def wait_restarted(actor, timeout_s: float, probe: str = "ready") -> None:
    """Block until a restarting actor answers `probe` (its constructor has run again). Calls made while
    Ray is still restarting it fail with ActorUnavailableError, so they are retried until `timeout_s`;
    an actor out of restarts raises ActorDiedError at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ray.get(getattr(actor, probe).remote(), timeout=max(deadline - time.monotonic(), 0.01))
            return
        except ray.exceptions.ActorUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
