"""Custom reward plug-ins: load them, call them concurrently with timeouts, and never swallow a failure.

Contract (verl's): `compute_score(data_source, solution_str, ground_truth, extra_info)` per sample,
sync or `async def`, returning a float or a dict with "score" (other numeric keys are logged); or a
batched form called as `fn(data_sources=, solution_strs=, ground_truths=, extra_infos=)` returning a
list of those. Load by `package.module:function` or `path/to/file.py:function` (function defaults to
`compute_score`).

A call that raises, exceeds its timeout, returns a non-finite score, or returns a dict without
"score" is reported with the sample id and the plug-in's name; then the step fails (`on_error=fail`,
the default) or the sample gets `fallback` and the failure is counted (`on_error=fallback`).
A sync plug-in's batch ends within `timeout_s` of its start (every sample, queued or running, is bounded
by it; raise `max_concurrency` for slow calls); a call still running then is abandoned on its daemon
thread, since Python cannot kill threads, and lives until it returns, so a plug-in that may block forever
should be written async. A timed-out async call is cancelled.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import logging
import math
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)
FAILURES = ("raised", "timeout", "nonfinite", "bad_return")


class PluginError(RuntimeError):
    def __init__(self, plugin: str, kind: str, sample_id, detail: str):
        super().__init__(f"reward plug-in {plugin!r}: {kind} on sample {sample_id}: {detail}")
        self.plugin, self.kind, self.sample_id, self.detail = plugin, kind, sample_id, detail


def load_callable(spec: str) -> Callable:
    """`pkg.mod:fn`, `pkg.mod`, `file.py:fn` or `file.py` → the function (default name compute_score)."""
    target, _, fn_name = spec.partition(":")
    fn_name = fn_name or "compute_score"
    if target.endswith(".py"):
        path = Path(target).expanduser().resolve()
        if not path.exists():
            raise FileNotFoundError(f"reward plug-in file {path} does not exist")
        mod_spec = importlib.util.spec_from_file_location(f"conrec_plugin_{path.stem}", path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise ImportError(f"reward plug-in {spec!r}: cannot import {target!r} ({e}); use 'pkg.module:fn' "
                              "on the PYTHONPATH or 'path/to/file.py:fn'") from e
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise AttributeError(f"reward plug-in {spec!r}: {target} has no function {fn_name!r}")
    return fn


@dataclass
class PluginResult:
    scores: np.ndarray
    extras: dict = field(default_factory=dict)
    failures: dict = field(default_factory=lambda: {k: 0 for k in FAILURES})


class Plugin:
    def __init__(self, spec: str, batched: bool = False, timeout_s: float = 10.0, on_error: str = "fail",
                 fallback: float = 0.0, max_concurrency: int = 8, name: str | None = None):
        if on_error not in ("fail", "fallback"):
            raise ValueError(f"reward plug-in {spec!r}: on_error must be 'fail' or 'fallback', got {on_error!r}")
        self.spec, self.name = spec, name or spec
        self.fn = load_callable(spec)
        self.batched, self.timeout_s, self.on_error = batched, timeout_s, on_error
        self.fallback, self.max_concurrency = fallback, max_concurrency
        self.is_async = inspect.iscoroutinefunction(self.fn)

    # ------------------------------------------------------------------ calling
    def __call__(self, sample_ids, data_source: str, solution_strs: list, ground_truths: list,
                 extra_infos: list) -> PluginResult:
        n = len(sample_ids)
        raw: list[Any] = [None] * n
        errors: dict[int, tuple[str, str]] = {}
        if self.batched:
            self._call_batched(data_source, solution_strs, ground_truths, extra_infos, raw, errors)
        elif self.is_async:
            self._call_async(data_source, solution_strs, ground_truths, extra_infos, raw, errors)
        else:
            self._call_threads(data_source, solution_strs, ground_truths, extra_infos, raw, errors)
        return self._collect(sample_ids, raw, errors)

    def _call_batched(self, ds, sols, gts, extras, raw, errors):
        out: dict = {}

        def run():
            try:
                out["v"] = self.fn(data_sources=[ds] * len(sols), solution_strs=sols, ground_truths=gts,
                                   extra_infos=extras)
                if inspect.isawaitable(out["v"]):
                    out["v"] = asyncio.run(asyncio.wait_for(out["v"], self.timeout_s))
            except BaseException as e:  # reported below for every sample of the batch
                out["e"] = e

        t = threading.Thread(target=run, daemon=True, name=f"reward-plugin-{self.name}")
        t.start()
        t.join(self.timeout_s)
        if t.is_alive():
            for i in range(len(sols)):
                errors[i] = ("timeout", f"batched call exceeded {self.timeout_s}s")
            return
        if "e" in out:
            for i in range(len(sols)):
                errors[i] = ("raised", f"{type(out['e']).__name__}: {out['e']}")
            return
        vals = list(out["v"]) if out.get("v") is not None else []
        if len(vals) != len(sols):
            for i in range(len(sols)):
                errors[i] = ("bad_return", f"batched call returned {len(vals)} results for {len(sols)} samples")
            return
        raw[:] = vals

    def _call_async(self, ds, sols, gts, extras, raw, errors):
        async def one(i, sem):
            async with sem:
                try:
                    raw[i] = await asyncio.wait_for(self.fn(ds, sols[i], gts[i], extras[i]), self.timeout_s)
                except asyncio.TimeoutError:
                    errors[i] = ("timeout", f"exceeded {self.timeout_s}s (cancelled)")
                except Exception as e:
                    errors[i] = ("raised", f"{type(e).__name__}: {e}")

        async def main():
            sem = asyncio.Semaphore(self.max_concurrency)
            await asyncio.gather(*(one(i, sem) for i in range(len(sols))))

        asyncio.run(main())

    def _call_threads(self, ds, sols, gts, extras, raw, errors):
        """Each sample on a daemon thread, at most `max_concurrency` at once, and every sample, running or
        still queued, scored within `timeout_s` of the batch's start: a batch takes at most timeout_s, however
        many calls block. A call past the deadline is abandoned (Python cannot kill a thread); daemon threads
        never hold up a later batch or the process's exit, and a late result is dropped."""
        finished: queue.SimpleQueue = queue.SimpleQueue()  # this call's results only

        def one(i):
            try:
                finished.put((i, self.fn(ds, sols[i], gts[i], extras[i]), None))
            except Exception as e:
                finished.put((i, None, e))

        deadline = time.monotonic() + self.timeout_s
        waiting, running = deque(range(len(sols))), set()
        while waiting or running:
            while waiting and len(running) < self.max_concurrency:
                i = waiting.popleft()
                running.add(i)
                threading.Thread(target=one, args=(i,), daemon=True, name=f"reward-{self.name}-{i}").start()
            try:
                got = [finished.get(timeout=max(0.0, min(0.05, deadline - time.monotonic())))]
                while not finished.empty():
                    got.append(finished.get_nowait())
            except queue.Empty:
                got = []
            for i, v, e in got:
                running.discard(i)
                if e is not None:
                    errors[i] = ("raised", f"{type(e).__name__}: {e}")
                else:
                    raw[i] = v
            if time.monotonic() >= deadline and (waiting or running):
                why = (f"not scored within {self.timeout_s}s of its batch's start ({len(sols)} samples, "
                       f"max_concurrency {self.max_concurrency}); raise timeout_s or max_concurrency")
                for i in running:
                    errors[i] = ("timeout", why + " (call abandoned)")
                for i in waiting:
                    errors[i] = ("timeout", why + " (never started)")
                break

    # ------------------------------------------------------------------ checking
    def _collect(self, sample_ids, raw, errors) -> PluginResult:
        n = len(sample_ids)
        scores = np.zeros(n, dtype=np.float32)
        extras: dict[str, np.ndarray] = {}
        for i in range(n):
            if i in errors:
                continue
            v = raw[i]
            if isinstance(v, dict):
                if "score" not in v:
                    errors[i] = ("bad_return", f"dict without 'score' (keys {sorted(v)})")
                    continue
                for k, x in v.items():
                    if k != "score" and isinstance(x, (int, float, np.number)) and not isinstance(x, bool):
                        extras.setdefault(k, np.full(n, np.nan, dtype=np.float32))[i] = float(x)
                v = v["score"]
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
                errors[i] = ("bad_return", f"score of type {type(v).__name__}, expected a number")
                continue
            if not math.isfinite(float(v)):
                errors[i] = ("nonfinite", f"score {v}")
                continue
            scores[i] = float(v)
        res = PluginResult(scores, extras)
        for i, (kind, detail) in sorted(errors.items()):
            sample_id = sample_ids[i]
            if self.on_error == "fail":
                more = f" ({len(errors) - 1} more failures in this batch)" if len(errors) > 1 else ""
                raise PluginError(self.name, kind, int(sample_id) if hasattr(sample_id, "__int__") else sample_id,
                                  detail + more)
            res.failures[kind] += 1
            scores[i] = self.fallback
        if errors:
            first = min(errors)
            log.warning("reward plug-in %r: %d failure(s) in a batch of %d, fallback %.3f assigned; first: %s on "
                        "sample %s: %s", self.name, len(errors), n, self.fallback, errors[first][0],
                        sample_ids[first], errors[first][1])
        return res
