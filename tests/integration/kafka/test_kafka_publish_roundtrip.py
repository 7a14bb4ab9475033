"""Publishing to a real Kafka-compatible broker and consuming every event back."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.errors import TransientError
from airflow_provider_sync.publish.kafka import KafkaPublisher, KafkaTargetSpec
from tests.services import consume_topic

pytestmark = pytest.mark.integration

ROWS = 10_000
BATCH_ROWS = 2_500


def KafkaConnection(extra: dict[str, Any]) -> ConnectionInfo:
    return ConnectionInfo(conn_type="kafka", extra=extra)


def _orders_batches() -> list[pa.RecordBatch]:
    start = datetime(2024, 5, 1, tzinfo=timezone.utc)
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("amount", pa.decimal128(12, 2)),
            ("email", pa.string()),
            ("updated_at", pa.timestamp("us", tz="UTC")),
            ("payload", pa.binary()),
        ]
    )
    batches = []
    for offset in range(0, ROWS, BATCH_ROWS):
        ids = list(range(offset, offset + BATCH_ROWS))
        batches.append(
            pa.record_batch(
                [
                    pa.array(ids, pa.int64()),
                    pa.array([Decimal(i) / 100 for i in ids], pa.decimal128(12, 2)),
                    pa.array([None if i % 97 == 0 else f"user{i}@example.com" for i in ids]),
                    pa.array([start + timedelta(microseconds=i) for i in ids], pa.timestamp("us", tz="UTC")),
                    pa.array([i.to_bytes(4, "big") for i in ids], pa.binary()),
                ],
                schema=schema,
            )
        )
    return batches


def test_ten_thousand_rows_are_published_and_consumed_back(kafka_bootstrap: str) -> None:
    topic = f"sync.test.orders.{uuid.uuid4().hex[:8]}"
    spec = KafkaTargetSpec(
        topic=topic,
        key_columns=("id",),
        source_table="public.orders",
        dag_id="orders_sync",
        run_id="manual__1",
        cursor_column="updated_at",
        headers={"pipeline": "orders_sync"},
    )
    publisher = KafkaPublisher(KafkaConnection(extra={"bootstrap.servers": kafka_bootstrap}))

    result = publisher.publish(_orders_batches(), spec)

    assert (result.messages, result.batches) == (ROWS, ROWS // BATCH_ROWS)
    messages = consume_topic(kafka_bootstrap, topic, ROWS)
    assert len(messages) == ROWS
    by_id = {}
    for message in messages:
        event = json.loads(message.value())
        assert json.loads(message.key()) == {"id": event["after"]["id"]}
        assert dict(message.headers() or []) == {"pipeline": b"orders_sync"}
        by_id[event["after"]["id"]] = event
    assert sorted(by_id) == list(range(ROWS))
    sample = by_id[1234]
    assert sample["op"] == "upsert"
    assert sample["source"] == "public.orders"
    assert (sample["dag_id"], sample["run_id"]) == ("orders_sync", "manual__1")
    assert sample["cursor"] == "2024-05-01T00:00:00.001234Z"
    assert sample["after"] == {
        "id": 1234,
        "amount": "12.34",
        "email": "user1234@example.com",
        "updated_at": "2024-05-01T00:00:00.001234Z",
        "payload": "AAAE0g==",
    }
    assert by_id[97]["after"]["email"] is None


def test_unreachable_broker_raises_transient_error_instead_of_returning() -> None:
    spec = KafkaTargetSpec(
        topic="sync.unreachable",
        key_columns=("id",),
        source_table="t",
        dag_id="d",
        run_id="r",
        flush_timeout_seconds=3,
    )
    publisher = KafkaPublisher(
        KafkaConnection(extra={"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": "2000"})
    )
    batch = pa.record_batch([pa.array([1, 2, 3])], names=["id"])

    with pytest.raises(TransientError, match=r"3 of 3 messages .* not confirmed"):
        publisher.publish([batch], spec)
