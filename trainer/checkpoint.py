"""Checkpoints that a reader can trust: HF weights for `transformers`/vLLM plus DeepSpeed state
for resume, a manifest written last, and a `latest` pointer replaced atomically.

    RUN/checkpoints/step_000120/hf/           save_pretrained (model + tokenizer)
    RUN/checkpoints/step_000120/ds/           engine.save_checkpoint (optimizer, scheduler, client state)
    RUN/checkpoints/step_000120/manifest.json size and SHA-256 of every file; written last, so its
                                              presence marks the folder complete
    RUN/checkpoints/latest                    name of the newest complete checkpoint

A checkpoint whose files do not match its manifest (a crash mid-save, a truncated copy, a flipped
byte on disk) is skipped with a warning and the previous good one is used; `keep` bounds how many
old ones stay, so there always is a previous one to fall back to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from common.atomic import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


def step_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:06d}"


def sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_manifest(ckpt: Path, meta: dict, keep: int = 0) -> None:
    """Seal `ckpt` (sizes + hashes), point `latest` at it, then drop all but the newest `keep` (0 = keep all)."""
    files = {str(p.relative_to(ckpt)): {"size": p.stat().st_size, "sha256": sha256(p)}
             for p in sorted(ckpt.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    write_json_atomic({**meta, "files": files}, ckpt / "manifest.json")
    write_text_atomic(ckpt.name + "\n", ckpt.parent / "latest")
    if keep:
        for old in sorted(p for p in ckpt.parent.glob("step_*") if p.is_dir())[:-keep]:
            shutil.rmtree(old, ignore_errors=True)


def save_engine_state(engine, d: Path, **client) -> None:
    """This rank's DeepSpeed state (weights, optimizer, scheduler) plus the torch RNG and `client` fields
    (step, data position); every rank calls it."""
    import torch

    engine.save_checkpoint(str(d), tag="state", client_state={**client, "torch_rng": torch.get_rng_state().tolist()})


def load_engine_state(engine, d: Path) -> dict:
    """Restore what `save_engine_state` wrote, RNG included; returns the client fields."""
    import torch

    _, client = engine.load_checkpoint(str(d), tag="state")
    torch.set_rng_state(torch.tensor(client["torch_rng"], dtype=torch.uint8))
    return client


def verify(ckpt: Path) -> str | None:
    """None when every file matches the manifest, else what is wrong (for the warning)."""
    m = ckpt / "manifest.json"
    if not m.exists():
        return "no manifest (the save did not finish)"
    try:
        files = json.loads(m.read_text())["files"]
    except (json.JSONDecodeError, KeyError) as e:
        return f"unreadable manifest ({e})"
    for name, want in files.items():
        p = ckpt / name
        if not p.exists():
            return f"{name} is missing"
        if p.stat().st_size != want["size"]:
            return f"{name} has {p.stat().st_size} bytes, the manifest says {want['size']}"
        if sha256(p) != want["sha256"]:
            return f"{name} does not match its SHA-256 (corrupted)"
    return None


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """Newest checkpoint that verifies; broken ones are skipped with a warning naming the fault."""
    root = Path(run_dir) / "checkpoints"
    if not root.exists():
        return None
    for ckpt in sorted((p for p in root.glob("step_*") if p.is_dir()), reverse=True):
        fault = verify(ckpt)
        if fault is None:
            return ckpt
        log.warning("checkpoint %s is unusable: %s; falling back to the previous one", ckpt, fault)
    return None
