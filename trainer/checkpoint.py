"""Checkpoints that a reader can trust: HF weights for `transformers`/vLLM plus DeepSpeed state
for resume, a manifest written last, and a `latest` pointer replaced atomically.

    RUN/checkpoints/step_000120/hf/           save_pretrained (model + tokenizer)
    RUN/checkpoints/step_000120/ds/           engine.save_checkpoint (optimizer, scheduler, client state)
    RUN/checkpoints/step_000120/manifest.json sizes of every file; its presence marks the folder complete
    RUN/checkpoints/latest                    name of the newest complete checkpoint
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from cluster.atomic import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


def step_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:06d}"


def write_manifest(ckpt: Path, meta: dict) -> None:
    files = {str(p.relative_to(ckpt)): p.stat().st_size for p in sorted(ckpt.rglob("*"))
             if p.is_file() and p.name != "manifest.json"}
    write_json_atomic({**meta, "files": files}, ckpt / "manifest.json")
    write_text_atomic(ckpt.name + "\n", ckpt.parent / "latest")


def is_complete(ckpt: Path) -> bool:
    m = ckpt / "manifest.json"
    if not m.exists():
        return False
    files = json.loads(m.read_text())["files"]
    return all((ckpt / f).exists() and (ckpt / f).stat().st_size == size for f, size in files.items())


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """Newest complete checkpoint; incomplete ones (a crash mid-save) are skipped with a warning."""
    root = Path(run_dir) / "checkpoints"
    if not root.exists():
        return None
    for ckpt in sorted((p for p in root.glob("step_*") if p.is_dir()), reverse=True):
        if is_complete(ckpt):
            return ckpt
        log.warning("checkpoint %s is incomplete (no manifest or size mismatch); skipping it", ckpt)
    return None
