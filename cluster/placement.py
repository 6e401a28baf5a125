"""Where the run's bundles go, and why a placement cannot be met.

A run reserves one placement-group bundle per rollout actor and learner rank. When Ray cannot place the
group, its own answer is a timeout; `unmet` turns that into the resources that are missing, from the nodes'
totals and the strategy's rule (STRICT_SPREAD: one node per bundle; STRICT_PACK: one node for all).
"""

from __future__ import annotations

from collections import Counter

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class PlacementError(RuntimeError):
    """The cluster cannot host the run's topology (a user-facing error: the CLI prints its one line)."""


def _fits(bundle: dict, node: dict) -> bool:
    return all(node.get(k, 0.0) >= v for k, v in bundle.items() if v > 0)


def _fmt(res: dict) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in sorted(res.items()) if v > 0) or "nothing"


def unmet(bundles: list[dict], strategy: str, nodes: list[dict]) -> str:
    """Why `bundles` under `strategy` cannot be placed on alive nodes with these total resources; '' when
    they could be (then the resources exist but other work holds them)."""
    need = Counter()
    for b in bundles:
        need.update({k: v for k, v in b.items() if v > 0})
    have = Counter()
    for n in nodes:
        have.update({k: v for k, v in n.items() if k in need})
    short = {k: (v, have.get(k, 0.0)) for k, v in need.items() if have.get(k, 0.0) < v}
    if short:
        return "; ".join(f"{k}: needs {v:g} in all, the cluster has {h:g}" for k, (v, h) in sorted(short.items()))
    if strategy == "STRICT_PACK" and not any(_fits(dict(need), n) for n in nodes):
        big = max(nodes, key=lambda n: sum(n.get(k, 0.0) for k in need), default={})
        return (f"STRICT_PACK needs one node with {_fmt(need)}; the largest has "
                f"{_fmt({k: big.get(k, 0.0) for k in need})}")
    if strategy == "STRICT_SPREAD":
        able = [n for n in nodes if _fits(bundles[0], n)] if bundles else nodes
        if len(able) < len(bundles):
            return (f"STRICT_SPREAD needs {len(bundles)} nodes with {_fmt(bundles[0])} each (one per bundle); "
                    f"{len(able)} of the {len(nodes)} alive nodes have it")
    return ""


def placement_message(bundles: list[dict], strategy: str, timeout_s: float, again: bool = False) -> str:
    """The error for a placement group Ray did not place in time (`again`: place again after a node was lost):
    what is missing, and what to change."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    why = unmet(bundles, strategy, nodes)
    head = (f"placement group of {len(bundles)} bundles ({_fmt(bundles[0]) if bundles else ''} each, "
            f"{strategy}) was not placed {'again after a node was lost ' if again else ''}within {timeout_s:g}s")
    if why:
        return f"{head}: {why}. Lower topology.rollout_actors / learner_ranks / *_per_*, or add nodes."
    keys = {k for b in bundles for k in b}
    free = {k: v for k, v in ray.available_resources().items() if k in keys}
    return (f"{head}: the cluster has the resources but other work holds them (free now: {_fmt(free)}). "
            f"Wait for it to end, or raise topology.placement_timeout_s.")


def where(pg, n_rollout: int) -> dict[str, list[str]]:
    """Node id (short) of each rollout actor's and learner rank's bundle, as Ray placed them."""
    from ray.util import placement_group_table

    b2n = placement_group_table(pg)["bundles_to_node_id"]
    ids = [str(b2n[i])[:8] for i in range(len(b2n))]
    return {"rollout": ids[:n_rollout], "learner": ids[n_rollout:]}


def unseen_from(folder, place, n_bundles: int) -> list[int]:
    """Bundles whose node cannot see `folder` (an absolute path): a probe file is written there and each
    bundle's node is asked whether it exists. Checkpoints and models travel through the run directory, so
    it must be on storage every node mounts."""
    import uuid
    from pathlib import Path

    import ray

    from common.actor_group import get

    probe = Path(folder) / f".shared_probe_{uuid.uuid4().hex[:12]}"
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text("conrec")
    try:
        exists = ray.remote(num_cpus=0)(_exists)
        seen = get([exists.options(scheduling_strategy=place(i)).remote(str(probe)) for i in range(n_bundles)])
    finally:
        probe.unlink(missing_ok=True)
    return [i for i, ok in enumerate(seen) if not ok]


def _exists(path: str) -> bool:
    import os

    return os.path.exists(path)
