"""A damaged or foreign watermark Variable is a terminal error naming it, never "no watermark"; a
watermark past the source's high-water mark is noticed; cursors print as ISO text, not Python reprs."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from airflow_provider_sync.core.watermark import (
    ExtractRange,
    Watermark,
    compute_range,
    describe_json,
    value_text,
    watermark_ahead,
)
from airflow_provider_sync.errors import TerminalError, WatermarkError
from airflow_provider_sync.resilience import Verdict, classify
from airflow_provider_sync.watermarks import parse_stored

UTC = dt.timezone.utc
T = dt.datetime(2026, 1, 1, 16, 40, tzinfo=UTC)
GOOD = {"cursor": {"timestamp": "2026-01-01T16:40:00+00:00"}, "key": [1000], "rows": 3}


@pytest.mark.parametrize(
    ("raw", "strategy", "reason"),
    [
        ("{not json", "timestamp", "it is not JSON (Expecting property name enclosed in double quotes"),
        ("[1]", "timestamp", "it is a JSON array, not an object"),
        ('"2026-01-01"', "timestamp", "it is a JSON string, not an object"),
        ("42", "sequence", "it is a JSON number, not an object"),
        ("null", "sequence", "it is a JSON null, not an object"),
        ('{"key": [1]}', "timestamp", "it has no 'cursor'"),
        ('{"cursor": null}', "timestamp", "its 'cursor' is null"),
        ('{"cursor": 17}', "timestamp", "strategy timestamp needs a timestamp cursor, got a int"),
        ('{"cursor": "yesterday"}', "timestamp", "cursor value 'yesterday' is not an ISO timestamp"),
        ('{"cursor": {"timestamp": "2026-13-45T00:00:00"}}', "timestamp", "month must be in 1..12"),
        (
            '{"cursor": {"timestamp": "2026-01-01T00:00:00+00:00"}}',
            "sequence",
            "strategy sequence needs a numeric cursor, got a datetime",
        ),
        ('{"cursor": "abc"}', "sequence", "cursor value 'abc' is not a number (strategy sequence)"),
        ('{"cursor": true}', "version", "strategy version needs a numeric cursor, got a boolean"),
        ('{"cursor": 5, "key": 7}', "sequence", "its 'key' is a JSON number, not a list"),
        ('{"cursor": 5, "committed_at": "later"}', "sequence", "Invalid isoformat string: 'later'"),
    ],
)
def test_damaged_values_name_the_variable_show_the_value_and_say_how_to_fix(
    raw: str, strategy: str, reason: str
) -> None:
    with pytest.raises(WatermarkError) as caught:
        parse_stored("shop_sync", "orders", raw, strategy)
    message = str(caught.value)
    assert message.startswith(f"watermark Variable 'sync:shop_sync:orders' is damaged: {reason}")
    assert f"Stored value: {raw}." in message
    assert "airflow-sync watermark set shop_sync orders --cursor " in message
    assert "airflow-sync watermark reset shop_sync orders" in message
    assert classify(caught.value) is Verdict.TERMINAL and isinstance(caught.value, TerminalError)


def test_the_example_in_the_message_fits_the_strategy() -> None:
    with pytest.raises(WatermarkError) as sequence:
        parse_stored("d", "t", "[1]", "sequence")
    assert '{"cursor": 1042, "key": [42]} for strategy sequence' in str(sequence.value)
    assert "--cursor 1042 " in str(sequence.value)
    with pytest.raises(WatermarkError) as timestamp:
        parse_stored("d", "t", "[1]", "timestamp")
    assert "--cursor 2024-01-31T00:00:00Z " in str(timestamp.value)


def test_a_long_value_is_cut_in_the_message() -> None:
    raw = json.dumps({"cursor": "x" * 5000})
    with pytest.raises(WatermarkError) as caught:
        parse_stored("d", "t", raw, "timestamp")
    message = str(caught.value)
    assert f"… ({len(raw)} characters)" in message and len(message) < 1200


def test_good_values_still_read_including_hand_edited_plain_cursors() -> None:
    assert parse_stored("d", "t", json.dumps(GOOD), "timestamp") == Watermark(T, (1000,), rows=3)
    assert parse_stored("d", "t", GOOD, "timestamp").cursor == T  # already decoded (sensor, trigger)
    assert parse_stored("d", "t", '{"cursor": "2026-01-01T16:40:00Z"}', "timestamp").cursor == T
    assert parse_stored("d", "t", '{"cursor": "17"}', "sequence").cursor == 17
    assert parse_stored("d", "t", '{"cursor": {"decimal": "1.5"}}', "version").cursor == Decimal("1.5")


def test_range_remembers_the_watermark_it_resumes_from() -> None:
    keyset = compute_range("timestamp", Watermark(T, (7,)))
    lagged = compute_range("timestamp", Watermark(T, (7,)), lag=dt.timedelta(minutes=5))
    assert keyset.watermark == T and lagged.watermark == T and lagged.start < T
    assert compute_range("timestamp", None, initial_value="2026-01-01").watermark is None
    interval = compute_range("timestamp", Watermark(T), interval=(T, T + dt.timedelta(days=1)))
    assert interval.watermark is None
    assert ExtractRange.from_json(json.loads(json.dumps(keyset.to_json()))).watermark == T


def test_a_watermark_past_the_high_water_mark_is_ahead() -> None:
    far = Watermark(dt.datetime(2099, 1, 1, tzinfo=UTC))
    ahead = watermark_ahead(compute_range("timestamp", far), T)
    assert ahead == {
        "watermark_ahead": {
            "watermark": {"timestamp": "2099-01-01T00:00:00+00:00"},
            "high_water_mark": {"timestamp": "2026-01-01T16:40:00+00:00"},
        }
    }
    assert watermark_ahead(compute_range("sequence", Watermark(5000)), None) == {
        "watermark_ahead": {"watermark": 5000, "high_water_mark": None}  # an empty source
    }
    lagged = compute_range("sequence", Watermark(5000), lag=10)
    assert watermark_ahead(lagged, 4999)["watermark_ahead"]["watermark"] == 5000
    assert watermark_ahead(compute_range("sequence", Watermark(5000)), 5000) == {}, "caught up, not ahead"
    assert watermark_ahead(compute_range("sequence", Watermark(10)), 5000) == {}
    assert watermark_ahead(compute_range("sequence", None), None) == {}, "no stored watermark"
    assert watermark_ahead(compute_range("full", Watermark(10)), 1) == {}


def test_cursors_print_as_iso_text_and_plain_key_values() -> None:
    mark = Watermark(T, (1000, "eu"), rows=3)
    assert mark.describe() == "2026-01-01T16:40:00+00:00 key 1000, eu"
    assert describe_json(GOOD) == "2026-01-01T16:40:00+00:00 key 1000"
    assert describe_json({"timestamp": "2026-01-01T16:40:00+00:00"}) == "2026-01-01T16:40:00+00:00"
    assert describe_json(None) == "none" and describe_json({"cursor": 17}) == "17"
    assert value_text(dt.date(2026, 1, 2)) == "2026-01-02" and value_text(Decimal("1.50")) == "1.50"
    assert value_text(b"\x00\x01") == "<2 bytes>"
    assert "datetime.datetime" not in mark.describe()
