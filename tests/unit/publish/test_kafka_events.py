"""Kafka change events: encodings, keys, topic names, producer settings and delivery accounting."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.core.topics import topic_for_table
from airflow_provider_sync.errors import TerminalError, TransientError
from airflow_provider_sync.publish.kafka import (
    KafkaPublisher,
    KafkaTargetSpec,
    encode_batch,
    json_safe_values,
    producer_config,
)


@dataclass
class Conn:
    extra: Any = field(default_factory=dict)
    host: str | None = None
    port: int | None = None


def _spec(**overrides: Any) -> KafkaTargetSpec:
    values: dict[str, Any] = {
        "topic": "sync.orders",
        "key_columns": ("id",),
        "source_table": "public.orders",
        "dag_id": "d",
        "run_id": "r",
        "cursor_column": "ts",
    }
    values.update(overrides)
    return KafkaTargetSpec(**values)


def test_json_safe_encodings_keep_precision_and_are_valid_json() -> None:
    cases = [
        (
            pa.array([Decimal("12345678901234567890.123456"), None], pa.decimal128(38, 6)),
            ["12345678901234567890.123456", None],
        ),
        (pa.array([datetime(2024, 1, 2, 3, 4, 5, 6)], pa.timestamp("us")), ["2024-01-02T03:04:05.000006"]),
        (
            pa.array([1_700_000_000_123_456_789], pa.timestamp("ns", tz="Europe/Paris")),
            ["2023-11-14T22:13:20.123456789Z"],
        ),
        (pa.array([date(2020, 2, 29)]), ["2020-02-29"]),
        (pa.array([time(23, 59, 59, 999999)]), ["23:59:59.999999"]),
        (pa.array([b"\x00\xff", None]), ["AP8=", None]),
        (pa.array([float("nan"), float("inf"), float("-inf"), 1.5]), ["NaN", "Infinity", "-Infinity", 1.5]),
        (pa.array(["é🙂", ""]).dictionary_encode(), ["é🙂", ""]),
        (pa.array([[Decimal("1.5")], None], pa.list_(pa.decimal128(5, 1))), [["1.5"], None]),
        (pa.array([True, None]), [True, None]),
    ]
    for array, expected in cases:
        values = json_safe_values(array)
        assert values == expected, array.type
        json.dumps(values, allow_nan=False)


def test_event_and_json_key_for_one_row() -> None:
    batch = pa.record_batch(
        {
            "id": pa.array([7]),
            "ts": pa.array([datetime(2024, 5, 1, tzinfo=timezone.utc)], pa.timestamp("us", tz="UTC")),
        }
    )
    [(key, value)] = list(encode_batch(batch, _spec(op="insert")))
    event = json.loads(value)
    assert json.loads(key) == {"id": 7}
    assert event["op"] == "insert"
    assert event["cursor"] == "2024-05-01T00:00:00.000000Z"
    assert event["after"] == {"id": 7, "ts": "2024-05-01T00:00:00.000000Z"}
    assert event["event_time"].endswith("Z")
    assert set(event) == {"op", "source", "dag_id", "run_id", "cursor", "event_time", "after"}


def test_joined_key_uses_separator_and_empty_for_null() -> None:
    batch = pa.record_batch({"region": pa.array(["eu", None]), "id": pa.array([1, 2])})
    spec = _spec(key_columns=("region", "id"), key_format="joined", key_separator=":", cursor_column=None)
    keys = [key for key, _ in encode_batch(batch, spec)]
    assert keys == [b"eu:1", b":2"]


def test_missing_key_column_is_named() -> None:
    batch = pa.record_batch({"other": pa.array([1])})
    with pytest.raises(TerminalError, match=r"not in the rows: id, ts; available columns: other"):
        list(encode_batch(batch, _spec()))


@pytest.mark.parametrize("topic", ["", "bad topic", "x" * 250, ".."])
def test_invalid_topic_is_rejected(topic: str) -> None:
    with pytest.raises(TerminalError, match="invalid"):
        _spec(topic=topic)


def test_spec_requires_keys() -> None:
    with pytest.raises(TerminalError, match="needs key columns"):
        _spec(key_columns=())


def test_topic_template_expansion() -> None:
    assert topic_for_table("sync.{schema}.{table}", schema="public", table="orders") == "sync.public.orders"
    assert topic_for_table("sync.{schema}.{table}", table="orders") == "sync.orders"
    with pytest.raises(TerminalError, match=r"only placeholders allowed are \{schema\}, \{table\}"):
        topic_for_table("sync.{db}", table="orders")
    with pytest.raises(TerminalError, match="need an explicit topic"):
        topic_for_table("sync.{table}", table="order lines")


def test_producer_config_enforces_idempotence(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        config = producer_config(Conn(extra={"bootstrap.servers": "b:9092", "acks": "1"}))
    assert config["acks"] == "all"
    assert config["enable.idempotence"] == "true"
    assert config["bootstrap.servers"] == "b:9092"
    assert "acks=1" in caplog.text


def test_producer_config_from_json_extra_and_host_fallback() -> None:
    assert producer_config(Conn(extra='{"linger.ms": "5"}', host="kafka", port=9092))[
        "bootstrap.servers"
    ] == ("kafka:9092")
    with pytest.raises(TerminalError, match=r"bootstrap\.servers"):
        producer_config(Conn(extra={}))
    with pytest.raises(TerminalError, match="not valid JSON"):
        producer_config(Conn(extra="{oops"))
    with pytest.raises(TerminalError, match="'oauth_cb' to a dotted path"):
        producer_config(Conn(extra={"bootstrap.servers": "b:1", "oauth_cb": "my.module.cb"}))


class FailingDeliveryProducer:
    """A producer whose broker rejects every second message (as a full partition or lost leader would)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.pending: list[tuple[Any, int]] = []
        self.count = 0

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any, on_delivery: Any) -> None:
        self.count += 1
        self.pending.append((on_delivery, self.count))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        from confluent_kafka import KafkaError

        for callback, number in self.pending:
            callback(KafkaError(KafkaError._MSG_TIMED_OUT) if number % 2 == 0 else None, None)
        self.pending.clear()
        return 0


def test_any_undelivered_message_raises_transient_error() -> None:
    publisher = KafkaPublisher(
        Conn(extra={"bootstrap.servers": "b:1"}), producer_factory=FailingDeliveryProducer
    )
    batch = pa.record_batch({"id": pa.array([1, 2, 3, 4]), "ts": pa.array([1, 2, 3, 4])})
    with pytest.raises(TransientError, match=r"2 of 4 messages .* watermark was not advanced") as info:
        publisher.publish([batch], _spec())
    assert info.value.terminal is False
