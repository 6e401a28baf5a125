"""`ActorGroup`: the actors of one role (rollout engines, reward workers, learner ranks) and the one place
that dispatches a sharded call to them, collects the results in order and handles a lost actor.

A call gives actor i its own arguments (its shard); results come back in actor order. An actor that is
*lost* (its process died, not: its method raised) is handled by the group's policy:

- `max_restarts` > 0 (rollout engines, reward workers): wait until Ray has restarted it, re-prime it with
  `on_restart(i, err)` (e.g. give it the current weights), resubmit *its* shard only. The other shards'
  results are kept, so the call neither loses nor repeats work.
- `max_restarts` = 0 (learner ranks, whose collective state a restart cannot restore): the first lost
  actor raises `ActorLost` at once; the others may still be blocked in a collective with it.

A method that raises surfaces its own error unchanged. `timeout_s` bounds the whole call.
"""

from __future__ import annotations

import time
from typing import Callable

import ray

from common.faults import actor_lost, wait_restarted

POLL_S = 1.0
"""The longest single wait on Ray. A `ray.get` without a timeout does not return to the interpreter until the
result is there, so a SIGTERM handler never runs while an actor call hangs (the process lingered until Ray's
GCS timeout, with no `interrupted` line); with a timeout it does. Every wait here is cut into such slices."""


def get(refs, timeout_s: float | None = None):
    """`ray.get(refs)` that a signal can interrupt: waits in slices of `POLL_S` (`timeout_s` None: for ever)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        left = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
        try:
            return ray.get(refs, timeout=max(left, 0.0))
        except ray.exceptions.GetTimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                raise


class ActorLost(RuntimeError):
    def __init__(self, role: str, index: int, method: str, err: BaseException):
        super().__init__(f"{role} {index} was lost during {method} ({type(err).__name__})")
        self.role, self.index, self.method = role, index, method


class ActorGroup:
    def __init__(self, role: str, actors: list, max_restarts: int = 0, restart_timeout_s: float = 120.0,
                 probe: str = "ready"):
        self.role, self.actors = role, list(actors)
        self.max_restarts, self.restart_timeout_s, self.probe = max_restarts, restart_timeout_s, probe

    def __len__(self) -> int:
        return len(self.actors)

    def __getitem__(self, i):
        return self.actors[i]

    def __iter__(self):
        return iter(self.actors)

    def call(self, method: str, args: list[tuple | None], on_restart: Callable | None = None,
             timeout_s: float | None = None) -> list:
        """`method(*args[i])` on actor i for every i whose args are not None; the results in actor order."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s

        def left(floor: float) -> float | None:
            return None if deadline is None else max(deadline - time.monotonic(), floor)

        pending = {getattr(self.actors[i], method).remote(*a): i for i, a in enumerate(args) if a is not None}
        results, restarts = {}, {i: 0 for i in pending.values()}
        while pending:
            slice_s = POLL_S if deadline is None else min(left(0.0), POLL_S)
            done, _ = ray.wait(list(pending), num_returns=1, timeout=slice_s)
            if not done and (deadline is None or time.monotonic() < deadline):
                continue  # a slice ended, not the call: the loop lets a signal handler run between slices
            if not done:
                for ref in pending:
                    ray.cancel(ref)
                raise ray.exceptions.GetTimeoutError(f"{self.role}s: {method} not done within {timeout_s}s")
            i = pending.pop(done[0])
            try:
                results[i] = ray.get(done[0])
            except Exception as e:
                if not actor_lost(e):
                    raise
                if restarts[i] >= self.max_restarts:
                    raise ActorLost(self.role, i, method, e) from e
                restarts[i] += 1
                wait_restarted(self.actors[i], self.restart_timeout_s if deadline is None else left(1.0), self.probe)
                if on_restart is not None:
                    on_restart(i, e)
                pending[getattr(self.actors[i], method).remote(*args[i])] = i
        return [results[i] for i in sorted(results)]

    def call_all(self, method: str, *args, **kw) -> list:
        """The same call on every actor."""
        return self.call(method, [args] * len(self.actors), **kw)
