"""The pgoutput decoder against message bytes built by hand from the protocol's layout (version 1)."""

from __future__ import annotations

import struct

import pytest

from airflow_provider_sync.cdc import pgoutput
from airflow_provider_sync.cdc.pgoutput import UNCHANGED, PgoutputError, decode


def text(value: str) -> bytes:
    data = value.encode()
    return b"t" + struct.pack("!i", len(data)) + data


def tuple_data(*columns: bytes) -> bytes:
    return struct.pack("!h", len(columns)) + b"".join(columns)


def test_begin_and_commit() -> None:
    begin = b"B" + struct.pack("!QqI", 0x16B3748, 123456789, 4242)
    assert decode(begin) == pgoutput.Begin(0x16B3748, 123456789, 4242)
    commit = b"C" + struct.pack("!bQQq", 0, 0x16B3748, 0x16B3780, 987)
    assert decode(commit) == pgoutput.Commit(0, 0x16B3748, 0x16B3780, 987)


def test_relation_with_key_flags() -> None:
    message = (
        b"R" + struct.pack("!I", 16390) + b"public\0items\0" + b"d" + struct.pack("!h", 2)
        + b"\x01" + b"id\0" + struct.pack("!Ii", 23, -1)
        + b"\x00" + b"name\0" + struct.pack("!Ii", 1043, 104)
    )  # fmt: skip
    assert decode(message) == pgoutput.Relation(
        16390,
        "public",
        "items",
        "d",
        (pgoutput.RelationColumn("id", 23, -1, True), pgoutput.RelationColumn("name", 1043, 104, False)),
    )


def test_insert_update_delete_tuples_with_null_and_unchanged_toast() -> None:
    insert = b"I" + struct.pack("!I", 7) + b"N" + tuple_data(text("1"), b"n", text('a "quoted", é'))
    assert decode(insert) == pgoutput.Insert(7, ("1", None, 'a "quoted", é'))

    update = b"U" + struct.pack("!I", 7) + b"N" + tuple_data(text("1"), text("x"), b"u")
    assert decode(update) == pgoutput.Update(7, ("1", "x", UNCHANGED))

    key_change = b"U" + struct.pack("!I", 7) + b"K" + tuple_data(text("1"), b"n", b"n")
    key_change += b"N" + tuple_data(text("2"), text("x"), b"u")
    assert decode(key_change) == pgoutput.Update(7, ("2", "x", UNCHANGED), ("1", None, None), "K")

    delete = b"D" + struct.pack("!I", 7) + b"O" + tuple_data(text("1"), text("x"), text(""))
    assert decode(delete) == pgoutput.Delete(7, ("1", "x", ""), "O")


def test_truncate_and_ignored_messages() -> None:
    truncate = b"T" + struct.pack("!ib", 2, 3) + struct.pack("!II", 10, 11)
    assert decode(truncate) == pgoutput.Truncate((10, 11), cascade=True, restart_identity=True)
    assert decode(b"O" + struct.pack("!Q", 5) + b"origin\0") == pgoutput.Ignored("O")


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"I" + struct.pack("!I", 7) + b"N" + struct.pack("!h", 1) + b"b", "binary tuple data"),
        (b"I" + struct.pack("!I", 7) + b"X", "expected the new tuple"),
        (b"B" + b"\0\0", "ends early"),
        (b"Z", "not one protocol version 1 defines"),
        (b"R" + struct.pack("!I", 1) + b"public", "no terminating NUL"),
    ],
)
def test_malformed_messages_are_terminal_errors(message: bytes, error: str) -> None:
    with pytest.raises(PgoutputError, match=error):
        decode(message)
