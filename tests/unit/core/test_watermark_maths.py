"""Watermark maths: JSON round trip, UTC normalisation, ranges from watermark / lag / initial / interval."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from airflow_provider_sync.core.watermark import (
    ExtractRange,
    Watermark,
    boundary_label,
    compute_range,
    decode_value,
    encode_value,
    next_watermark,
    normalize_cursor,
    to_source_naive,
)
from airflow_provider_sync.errors import WatermarkError

UTC = dt.timezone.utc
T = dt.datetime(2024, 5, 1, 8, 30, 15, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        None,
        1,
        "x",
        True,
        2.5,
        Decimal("12345678901234567890.123456789"),
        T,
        dt.datetime(2024, 1, 1, 1, 2, 3),
        dt.date(2024, 2, 29),
        dt.time(10, 11, 12, 13),
        b"\x00\xff",
    ],
)
def test_values_survive_json(value: object) -> None:
    assert decode_value(json.loads(json.dumps(encode_value(value)))) == value


def test_unsupported_cursor_type_is_explained() -> None:
    with pytest.raises(WatermarkError, match="type list cannot be stored"):
        encode_value([1])


def test_watermark_json_round_trip() -> None:
    mark = Watermark(T, (42, "a"), "run-1", T, 10)
    assert Watermark.from_json(json.loads(json.dumps(mark.to_json()))) == mark
    assert Watermark.from_json(json.dumps(mark.to_json())) == mark


def test_hand_edited_watermarks_are_accepted() -> None:
    edited = Watermark.from_json({"cursor": "2024-05-01T08:30:15Z"}, strategy="timestamp")
    assert edited.cursor == dt.datetime(2024, 5, 1, 8, 30, 15, tzinfo=UTC) and edited.key == ()
    assert Watermark.from_json({"cursor": "17"}, strategy="sequence").cursor == 17


@pytest.mark.parametrize("bad", ["not json", {"key": [1]}, [1, 2]])
def test_unreadable_watermark_says_how_to_fix(bad: object) -> None:
    with pytest.raises(WatermarkError, match="fix or delete it"):
        Watermark.from_json(bad)  # type: ignore[arg-type]


def test_naive_timestamps_are_read_in_the_source_zone() -> None:
    paris_summer = dt.datetime(2024, 7, 1, 12, 0)
    assert normalize_cursor(paris_summer, "timestamp", "Europe/Paris") == dt.datetime(
        2024, 7, 1, 10, 0, tzinfo=UTC
    )
    assert normalize_cursor(T.astimezone(dt.timezone(dt.timedelta(hours=5))), "timestamp") == T
    assert to_source_naive(dt.datetime(2024, 7, 1, 10, 0, tzinfo=UTC), "Europe/Paris") == paris_summer
    assert normalize_cursor(dt.date(2024, 1, 2), "timestamp") == dt.datetime(2024, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "strategy", "message"),
    [
        ("yesterday", "timestamp", "not an ISO timestamp"),
        (5, "timestamp", "needs a timestamp cursor"),
        ("abc", "sequence", "not a number"),
        (True, "version", "got a boolean"),
    ],
)
def test_wrong_cursor_values_are_refused(value: object, strategy: str, message: str) -> None:
    with pytest.raises(WatermarkError, match=message):
        normalize_cursor(value, strategy)


def test_range_resumes_after_the_watermark_key() -> None:
    assert compute_range("timestamp", Watermark(T, (7,))) == ExtractRange(start=T, start_key=(7,))
    assert compute_range("sequence", Watermark(10)) == ExtractRange(start=10)


def test_lag_reopens_a_window_behind_the_watermark() -> None:
    lagged = compute_range("timestamp", Watermark(T, (7,)), lag=dt.timedelta(minutes=5))
    assert lagged == ExtractRange(start=T - dt.timedelta(minutes=5), start_inclusive=True)
    assert compute_range("sequence", Watermark(100, (1,)), lag=10).start == 90
    with pytest.raises(WatermarkError, match="must be a duration"):
        compute_range("timestamp", Watermark(T), lag=5)
    with pytest.raises(WatermarkError, match="must be a number"):
        compute_range("version", Watermark(5), lag=dt.timedelta(seconds=1))


def test_first_run_starts_at_the_initial_value_and_end_value_caps() -> None:
    first = compute_range("timestamp", None, initial_value="2024-01-01T00:00:00Z", end_value="2024-02-01")
    assert first.start == dt.datetime(2024, 1, 1, tzinfo=UTC) and first.start_inclusive
    assert first.end == dt.datetime(2024, 2, 1, tzinfo=UTC)
    assert compute_range("sequence", None) == ExtractRange()


def test_interval_ignores_the_watermark() -> None:
    start, end = T, T + dt.timedelta(days=1)
    interval = compute_range("timestamp", Watermark(T + dt.timedelta(days=9)), interval=(start, end))
    assert interval == ExtractRange(mode="interval", start=start, start_inclusive=True, end_exclusive=end)
    with pytest.raises(WatermarkError, match="empty or open"):
        compute_range("timestamp", None, interval=(end, start))


def test_full_and_unknown_strategies() -> None:
    assert compute_range("full", Watermark(T)) == ExtractRange(mode="full")
    with pytest.raises(WatermarkError, match="not one of timestamp, sequence, version, full"):
        compute_range("hourly", None)


def test_range_json_round_trip() -> None:
    range_ = ExtractRange(start=T, start_key=(1, "b"), end=T + dt.timedelta(hours=1))
    assert ExtractRange.from_json(json.loads(json.dumps(range_.to_json()))) == range_


def test_next_watermark_is_the_last_row_read_and_never_moves_back() -> None:
    previous = Watermark(T, (5,), "r1")
    moved = next_watermark(previous, T, (9,), run_id="r2", rows=3, now=T)
    assert moved == Watermark(T, (9,), "r2", T, 3)
    assert next_watermark(previous, None, (), run_id="r2", rows=0) is previous
    behind = next_watermark(previous, T - dt.timedelta(seconds=1), (99,), run_id="r2", rows=1)
    assert behind is previous  # a lag window re-read rows behind the previous watermark
    assert next_watermark(None, 5, (), run_id="r", rows=1, now=T) == Watermark(5, (), "r", T, 1)


def test_boundary_labels_are_deterministic_and_bounded() -> None:
    assert boundary_label(T, (1,)) == boundary_label(T, (1,))
    assert boundary_label(T, (1,)) != boundary_label(T, (2,))
    long_label = boundary_label("x" * 500, ())
    assert long_label.startswith("sha256:") and len(long_label) < 180
