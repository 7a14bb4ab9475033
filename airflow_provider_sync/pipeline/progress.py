"""Progress lines for long extractions and loads: rows, rows/s, percent and ETA when a total is known."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class ProgressReporter:
    """Call :meth:`add` after each batch; a line is logged at most every ``interval`` seconds, and
    :meth:`finish` logs (and returns) the summary."""

    def __init__(
        self,
        logger: logging.Logger,
        label: str,
        total: int | None = None,
        *,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.label = label
        self.total = total
        self.interval = interval
        self.clock = clock
        self.rows = 0
        self.started = clock()
        self._last_report = self.started

    def _rate(self, now: float) -> float:
        elapsed = now - self.started
        return self.rows / elapsed if elapsed > 0 else 0.0

    def status(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        rate = self._rate(now)
        text = f"{self.label}: {self.rows:,} rows, {rate:,.0f} rows/s"
        if self.total:
            percent = min(100.0, 100.0 * self.rows / self.total)
            text += f", {percent:.1f}% of ~{self.total:,}"
            if rate > 0 and self.rows < self.total:
                text += f", ETA {(self.total - self.rows) / rate:,.0f}s"
        return text

    def add(self, rows: int) -> None:
        self.rows += rows
        now = self.clock()
        if now - self._last_report >= self.interval:
            self._last_report = now
            self.logger.info("%s", self.status(now))

    def finish(self) -> str:
        now = self.clock()
        summary = (
            f"{self.label}: done, {self.rows:,} rows in {now - self.started:,.1f}s "
            f"({self._rate(now):,.0f} rows/s)"
        )
        self.logger.info("%s", summary)
        return summary
