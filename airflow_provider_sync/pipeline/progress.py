"""Progress lines for long extractions and loads: rows, rows/s, and percent and ETA when a total is known.

A line reads ``extract public.orders: 400,000 / ~1,000,000 rows (40%), 210,000 rows/s, ETA 3s`` (``~``
marks a total the database estimated). Lines are rate-limited: one every ``interval`` seconds, or one per
further 10% of the total once ``min_gap`` seconds have passed, so a small table logs only its final line.
Rates are over the reporter's own time (from :meth:`ProgressReporter.start` to :meth:`finish`), never
the run's wall time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: Seconds between two progress lines, and the least gap for a line at a further 10% (read when a
#: reporter is made, so a test can make every batch report).
INTERVAL = 10.0
MIN_GAP = 1.0


def format_count(rows: int) -> str:
    return f"{rows:,}"


def format_rate(rows: int, seconds: float) -> str:
    """``"210,000 rows/s"``; ``"-"`` when no time has passed (a rate would be meaningless)."""
    return f"{rows / seconds:,.0f} rows/s" if seconds > 0 else "- rows/s"


def format_duration(seconds: float, *, tenths: bool = True) -> str:
    """Short human durations: ``0.4s``, ``12s``, ``4m 05s``, ``2h 03m`` (``tenths`` false: ``3s``, for an
    ETA, whose tenths would be false precision)."""
    if seconds < 10 and tenths:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


class ProgressReporter:
    """Call :meth:`add` after each batch; a line is logged when due, and :meth:`finish` logs (and returns)
    the final line. ``total`` may be set later (:meth:`set_total`), when the database has estimated it."""

    def __init__(
        self,
        logger: logging.Logger,
        label: str,
        total: int | None = None,
        *,
        estimated: bool = False,
        interval: float | None = None,
        step_percent: int = 10,
        min_gap: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.label = label
        self.interval = INTERVAL if interval is None else interval
        self.step_percent = step_percent
        self.min_gap = MIN_GAP if min_gap is None else min_gap
        self.clock = clock
        self.rows = 0
        self.total: int | None = None
        self.estimated = estimated
        self.set_total(total, estimated=estimated)
        self.started = clock()
        self._last_report = self.started
        self._next_step = step_percent
        self.ended: float | None = None

    def set_total(self, total: int | None, *, estimated: bool = True) -> None:
        self.total = total if total and total > 0 else None
        self.estimated = estimated

    def start(self) -> None:
        """Restart the clock: the work measured begins now (not when the reporter was made)."""
        self.started = self._last_report = self.clock()

    @property
    def elapsed(self) -> float:
        return (self.ended if self.ended is not None else self.clock()) - self.started

    def percent(self) -> int | None:
        """Whole percent done, None without a total; an estimate passed shows as 99 until the end."""
        if self.total is None:
            return None
        return min(99 if self.ended is None else 100, int(100 * self.rows / self.total))

    def eta(self, now: float) -> float | None:
        """Seconds left at the rate so far, None without a total, a rate, or rows left."""
        elapsed = now - self.started
        if self.total is None or self.rows <= 0 or elapsed <= 0 or self.rows >= self.total:
            return None
        return (self.total - self.rows) / (self.rows / elapsed)

    def status(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        text = f"{self.label}: {format_count(self.rows)}"
        if self.total is not None:
            text += f" / {'~' if self.estimated else ''}{format_count(self.total)} rows ({self.percent()}%)"
        else:
            text += " rows"
        text += f", {format_rate(self.rows, now - self.started)}"
        eta = self.eta(now)
        if eta is not None:
            text += f", ETA {format_duration(max(eta, 1.0), tenths=False)}"
        return text

    def _due(self, now: float) -> bool:
        since = now - self._last_report
        if since >= self.interval:
            return True
        percent = self.percent()
        return percent is not None and percent >= self._next_step and since >= self.min_gap

    def add(self, rows: int) -> None:
        self.rows += rows
        now = self.clock()
        if self._due(now):
            self._last_report = now
            percent = self.percent() or 0
            self._next_step = (percent // self.step_percent + 1) * self.step_percent
            self.logger.info("%s", self.status(now))

    def finish(self, *, log: bool = True) -> str:
        """Stop the clock and return ``label: done, N rows in 2.1s, 476 rows/s`` (logged unless ``log``
        is false: a caller that reports more, like the load's summary, logs its own line)."""
        self.ended = self.clock()
        seconds = self.ended - self.started
        summary = (
            f"{self.label}: done, {format_count(self.rows)} rows in {format_duration(seconds)}, "
            f"{format_rate(self.rows, seconds)}"
        )
        if log:
            self.logger.info("%s", summary)
        return summary
