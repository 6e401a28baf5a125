"""Progress for long stages: a tqdm bar on a terminal; periodic plain log lines otherwise (a log file or a
CI console gets `desc: 120/400 (30 %) loss=0.41`, not one enormous line of carriage returns)."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("conrec.progress")


def progress(total: int, desc: str, initial: int = 0, enabled: bool = True, every_s: float = 30.0):
    if enabled and sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True)
    return LogProgress(total, desc, initial, enabled, every_s)


class LogProgress:
    """The part of tqdm's interface conrec uses, as log lines at each 10 % or every `every_s` seconds."""

    def __init__(self, total: int, desc: str, initial: int = 0, enabled: bool = True, every_s: float = 30.0):
        self.total, self.desc, self.n, self.enabled, self.every_s = total, desc, initial, enabled, every_s
        self.postfix, self._t, self._decile = "", time.monotonic(), self._dec()

    def _dec(self) -> int:
        return int(10 * self.n / self.total) if self.total else 0

    def update(self, k: int = 1) -> None:
        self.n += k
        if self.enabled and (self._dec() > self._decile or time.monotonic() - self._t > self.every_s):
            self._decile, self._t = self._dec(), time.monotonic()
            pct = f" ({100 * self.n / self.total:.0f} %)" if self.total else ""
            log.info("%s: %d/%d%s%s", self.desc, self.n, self.total, pct, f" {self.postfix}" if self.postfix else "")

    def set_postfix(self, **kw) -> None:
        self.postfix = " ".join(f"{k}={v}" for k, v in kw.items())

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass
