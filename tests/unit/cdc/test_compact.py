"""Compacting change batches to the last change per key (core/changes.py)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from airflow_provider_sync.cdc import changes as contract
from airflow_provider_sync.core.changes import after_position, compact, split_by_op, unchanged_groups
from airflow_provider_sync.dialects.postgres_capture import cdc_names
from airflow_provider_sync.dialects.types import TableRef


def batch(rows: list[tuple[int, str | None, str | None, str, str, list[str] | None]]) -> pa.Table:
    """Rows of (id, title, body, op, position, unchanged); _sync_seq is the row's ordinal."""
    schema = contract.change_schema(
        pa.schema([("id", pa.int32()), ("title", pa.string()), ("body", pa.string())])
    )
    return pa.Table.from_pylist(
        [
            {
                "id": i,
                "title": t,
                "body": b,
                "_sync_op": op,
                "_sync_position": p,
                "_sync_seq": n,
                "_sync_unchanged": u,
            }
            for n, (i, t, b, op, p, u) in enumerate(rows, start=1)
        ],
        schema=schema,
    )


def test_the_core_names_match_the_contract() -> None:
    from airflow_provider_sync.core import changes as core

    assert (core.OP, core.POSITION, core.SEQUENCE, core.UNCHANGED) == contract.ALL_METADATA_COLUMNS


def test_the_last_change_per_key_wins_in_sequence_order() -> None:
    changes = batch(
        [
            (2, "b", "B", "insert", "A1", None),
            (1, "a", "A", "insert", "A1", None),
            (2, "b2", "B", "update", "A2", None),
            (3, "c", "C", "insert", "A2", None),
            (1, None, None, "delete", "A3", None),
            (3, "c3", "C", "update", "A3", None),
        ]
    )
    compacted = compact(changes.slice(0).to_batches()[0], ["id"])
    assert compacted.select(["id", "title", "_sync_op", "_sync_seq"]).to_pylist() == [
        {"id": 2, "title": "b2", "_sync_op": "update", "_sync_seq": 3},
        {"id": 1, "title": None, "_sync_op": "delete", "_sync_seq": 5},
        {"id": 3, "title": "c3", "_sync_op": "update", "_sync_seq": 6},
    ]
    deletes, upserts = split_by_op(compacted)
    assert deletes.column("id").to_pylist() == [1] and upserts.column("id").to_pylist() == [2, 3]


def test_unchanged_columns_are_carried_from_an_earlier_change_of_the_key() -> None:
    changes = batch(
        [
            (1, "a", "big", "update", "A1", None),  # body changed in this run
            (1, "a2", None, "update", "A2", ["body"]),
            (2, "b2", None, "update", "A2", ["body"]),  # nothing earlier: the target keeps its value
            (3, "c", "old", "insert", "A1", None),
            (3, None, None, "delete", "A2", None),
            (3, "c2", "new", "insert", "A3", None),
            (3, "c3", None, "update", "A4", ["body"]),
        ]
    )
    compacted = compact(changes, ["id"])
    assert compacted.select(["id", "title", "body", "_sync_unchanged"]).to_pylist() == [
        {"id": 1, "title": "a2", "body": "big", "_sync_unchanged": []},
        {"id": 2, "title": "b2", "body": None, "_sync_unchanged": ["body"]},
        {"id": 3, "title": "c3", "body": "new", "_sync_unchanged": []},
    ]
    groups = unchanged_groups(compacted)
    assert [(names, g.column("id").to_pylist()) for names, g in groups] == [((), [1, 3]), (("body",), [2])]


def test_a_delete_stops_the_look_back() -> None:
    changes = batch(
        [
            (1, "a", "old", "update", "A1", None),
            (1, None, None, "delete", "A2", None),
            (1, "a3", None, "update", "A3", ["body"]),
        ]
    )
    assert compact(changes, ["id"]).column("_sync_unchanged").to_pylist() == [["body"]]


def test_after_position_drops_changes_at_or_before_it() -> None:
    changes = batch(
        [(1, "a", "", "insert", "00000000000000A1", None), (2, "b", "", "insert", "00000000000000A2", None)]
    )
    assert after_position(changes, "00000000000000A1").column("id").to_pylist() == [2]
    assert after_position(changes, None).num_rows == 2
    with pytest.raises(ValueError, match="key columns"):
        compact(changes, [])


def test_slot_names_are_sanitised_short_and_unique() -> None:
    long_dag = "My-DAG." + "x" * 80
    names = cdc_names(long_dag, TableRef("Orders", "Sales"))
    assert len(names.slot) <= 63 and names.slot == names.publication
    assert names.slot.startswith("sync_my_dag_xxx") and names.slot == names.slot.lower()
    assert set(names.slot) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")
    assert cdc_names("a.b", "c").slot != cdc_names("a_b", "c").slot
    assert cdc_names("a", "s.t").slot == cdc_names("a", TableRef("t", "s")).slot  # the same table
