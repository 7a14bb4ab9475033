"""Progress lines: percent, rate and ETA maths on a fake clock, rate limiting, and short lines."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_sync.pipeline.progress import ProgressReporter, format_duration, format_rate

LOGGER = "progress-lines-test"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reporter(clock: Clock, total: int | None = 1_000_000, **options: object) -> ProgressReporter:
    return ProgressReporter(
        logging.getLogger(LOGGER), "extract public.orders", total, clock=clock, **options  # type: ignore[arg-type]
    )


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_a_line_has_rows_total_percent_rate_and_eta() -> None:
    clock = Clock()
    progress = reporter(clock)
    progress.rows = 400_000
    clock.now = 2.0
    assert progress.status() == (
        "extract public.orders: 400,000 / 1,000,000 rows (40%), 200,000 rows/s, ETA 3s"
    )


def test_an_estimated_total_is_marked_and_never_shows_100_percent_before_the_end() -> None:
    clock = Clock()
    progress = reporter(clock, total=1_000, estimated=True)
    progress.rows, clock.now = 1_500, 3.0  # the statistics were stale: more rows than estimated
    assert progress.status() == "extract public.orders: 1,500 / ~1,000 rows (99%), 500 rows/s"


def test_without_a_total_a_line_has_rows_and_rate_only() -> None:
    clock = Clock()
    progress = reporter(clock, total=None)
    progress.rows, clock.now = 12_345, 5.0
    assert progress.status() == "extract public.orders: 12,345 rows, 2,469 rows/s"
    progress.set_total(0)  # a database that estimates 0 rows knows nothing: no percent
    assert progress.percent() is None


def test_rate_and_eta_count_from_start_not_from_when_the_reporter_was_made() -> None:
    clock = Clock()
    progress = reporter(clock, total=1_000)
    clock.now = 100.0  # connecting, reading the schema, the high-water mark: not rows moving
    progress.start()
    clock.now = 102.0
    progress.rows = 500
    assert progress.status().endswith("(50%), 250 rows/s, ETA 2s")


def test_lines_are_rate_limited_by_time_and_by_tenths(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    progress = reporter(clock, total=1_000, interval=30, min_gap=1)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        progress.add(50)  # 5%, at once: nothing yet
        clock.now = 0.5
        progress.add(100)  # 15%, but within the least gap: nothing
        clock.now = 2.0
        progress.add(100)  # 25%: a further tenth passed and the gap too
        clock.now = 2.5
        progress.add(20)  # 27%: same tenth
        clock.now = 3.5
        progress.add(40)  # 31%: the next tenth
        summary = progress.finish()
    assert lines(caplog) == [
        "extract public.orders: 250 / 1,000 rows (25%), 125 rows/s, ETA 6s",
        "extract public.orders: 310 / 1,000 rows (31%), 89 rows/s, ETA 8s",
        summary,
    ]
    assert summary == "extract public.orders: done, 310 rows in 3.5s, 89 rows/s"


def test_without_a_total_lines_come_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    progress = reporter(clock, total=None, interval=10)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for second in range(1, 26):
            clock.now = float(second)
            progress.add(1_000)
    assert [line.split(": ")[1] for line in lines(caplog)] == [
        "10,000 rows, 1,000 rows/s",
        "20,000 rows, 1,000 rows/s",
    ]


def test_a_quick_small_read_logs_only_its_final_line(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    progress = reporter(clock, total=100)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        clock.now = 0.2
        progress.add(100)
        assert progress.finish(log=False) == "extract public.orders: done, 100 rows in 0.2s, 500 rows/s"
        progress.finish()
    assert lines(caplog) == ["extract public.orders: done, 100 rows in 0.2s, 500 rows/s"]
    assert progress.percent() == 100 and progress.elapsed == pytest.approx(0.2)


def test_lines_stay_short_at_large_counts() -> None:
    clock = Clock()
    progress = reporter(clock, total=9_876_543_210)
    progress.rows, clock.now = 1_234_567_890, 3_600.0
    line = progress.status()
    assert line == (
        "extract public.orders: 1,234,567,890 / 9,876,543,210 rows (12%), 342,936 rows/s, ETA 7h 00m"
    )
    assert len(line) <= 100


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.04, "0.0s"), (3.0, "3.0s"), (9.94, "9.9s"), (12.4, "12s"), (59.6, "1m 00s"), (245, "4m 05s"),
     (7_380, "2h 03m")],
)
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_an_eta_has_whole_seconds_and_is_never_zero() -> None:
    assert format_duration(2.6, tenths=False) == "3s"
    clock = Clock()
    progress = reporter(clock, total=1_000)
    progress.rows, clock.now = 999, 10.0
    assert progress.status().endswith("(99%), 100 rows/s, ETA 1s")


def test_no_rate_without_time() -> None:
    assert format_rate(10, 0.0) == "- rows/s"
    assert format_rate(1_000, 0.5) == "2,000 rows/s"
