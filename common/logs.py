"""Where output goes: conrec's own lines on the console, every worker's output in RUN/logs/.

`conrec run` (without -v) sets `CONREC_LOG_DIR=RUN/logs` before it starts Ray and the SFT process; every
actor then calls `redirect_worker_output(role)` first thing, which points the process's stdout and
stderr (file descriptors 1 and 2, so vLLM's, DeepSpeed's and C++ output too) at RUN/logs/<role>.log.
With -v nothing is redirected and Ray streams the workers' output to the console as usual.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

ENV = "CONREC_LOG_DIR"
NOISY = ("deepspeed", "DeepSpeed", "torch.distributed", "transformers", "vllm", "ray", "sentence_transformers",
         "httpx", "filelock", "urllib3")


def redirect_worker_output(role: str) -> Path | None:
    """In a worker process: stdout and stderr → $CONREC_LOG_DIR/<role>.log (appended); None when unset."""
    d = os.environ.get(ENV)
    if not d:
        return None
    path = Path(d) / f"{role}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s [{role}] %(name)s: %(message)s",
                        force=True)
    return path


def quiet_third_party() -> None:
    """In a process whose console the user reads (the SFT child): libraries' INFO lines off, warnings kept."""
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # torch/deepspeed deprecation notices
    try:
        import transformers

        transformers.utils.logging.set_verbosity_warning()
        transformers.utils.logging.disable_progress_bar()  # "Loading weights", "Writing model shards"
    except ImportError:
        pass
    try:
        from deepspeed.utils import logger as ds_logger

        ds_logger.setLevel(logging.WARNING)
    except ImportError:
        pass
