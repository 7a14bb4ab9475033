"""Change rows and rows the source flags as deleted become delete events and tombstones on Kafka."""

from __future__ import annotations

import json

import pyarrow as pa

from airflow_provider_sync.publish.kafka import KafkaTargetSpec, encode_batch


def _spec(**overrides: object) -> KafkaTargetSpec:
    values: dict[str, object] = {
        "topic": "sync.items",
        "key_columns": ("id",),
        "source_table": "public.items",
        "dag_id": "d",
        "run_id": "r",
    }
    values.update(overrides)
    return KafkaTargetSpec(**values)  # type: ignore[arg-type]


def test_a_change_batch_keeps_its_operations_and_positions() -> None:
    batch = pa.record_batch(
        {
            "id": [1, 2, 3],
            "name": ["one", "two", None],
            "_sync_op": ["insert", "update", "delete"],
            "_sync_position": ["00000000016B3748", "00000000016B3748", "00000000016B3790"],
            "_sync_seq": pa.array([0, 1, 2], pa.int64()),
        }
    )
    messages = list(encode_batch(batch, _spec()))
    assert [key for key, _ in messages] == [b'{"id":1}', b'{"id":2}', b'{"id":3}', b'{"id":3}']
    events = [json.loads(value) if value is not None else None for _, value in messages]
    assert [e["op"] if e else None for e in events] == ["insert", "update", "delete", None]
    assert events[0]["after"] == {"id": 1, "name": "one"}  # no metadata column leaks into the row
    assert events[2]["before"] == {"id": 3} and "after" not in events[2]
    assert events[2]["position"] == "00000000016B3790"


def test_flagged_rows_become_deletes_and_tombstones_can_be_turned_off() -> None:
    batch = pa.record_batch({"id": [1, 2], "is_deleted": [False, True], "name": ["a", "b"]})
    messages = list(encode_batch(batch, _spec(soft_delete_column="is_deleted")))
    assert [(key, json.loads(value)["op"] if value else None) for key, value in messages] == [
        (b'{"id":1}', "upsert"),
        (b'{"id":2}', "delete"),
        (b'{"id":2}', None),
    ]
    without = list(encode_batch(batch, _spec(soft_delete_column="is_deleted", tombstones=False)))
    assert len(without) == 2
