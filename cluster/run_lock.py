"""One `conrec run` per run directory: an advisory lock file that names its holder.

`RUN/.conrec.lock` holds an exclusive `flock` for the run's lifetime and records host, PID and start
time. The kernel releases a flock when its process dies, however it dies, so a lock file left behind by
a killed run is free to take: the next run takes it over and says whose it was. A run that finds the
lock held stops at once with one line naming the holder. (flock is per machine on most network file
systems: two hosts sharing one run_dir are not protected by it.)
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)
LOCK_NAME = ".conrec.lock"


class RunDirLocked(FileExistsError):
    """Another live process holds the run directory."""


class RunLock:
    def __init__(self, run_dir: Path | str):
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0))
            os.close(fd)
            raise RunDirLocked(f"{self.path.parent} is in use by {holder}; wait for it to finish, stop it, or choose "
                               "another run_dir=") from None
        previous = os.pread(fd, 4096, 0)
        if previous.strip():  # its process died without releasing (SIGKILL, a crash, a lost node)
            log.warning("run directory %s: taking over the lock of %s, which is no longer running",
                        self.path.parent, _describe(previous))
        me = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, me, 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)  # an empty lock file: released cleanly
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _describe(raw: bytes) -> str:
    try:
        h = json.loads(raw.decode())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h["started"]))
        return f"PID {h['pid']} on {h['host']} (since {since})"
    except (ValueError, KeyError, UnicodeDecodeError):
        return "another process"
