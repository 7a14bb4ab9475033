"""A pure decoder of PostgreSQL ``pgoutput`` logical replication messages, protocol version 1.

Each message is one ``data`` value of ``pg_logical_slot_peek_binary_changes`` (see "Logical Replication
Message Formats" in the PostgreSQL manual). Tuple values arrive in text form: the type's output function,
the same text ``COPY`` writes. A column is ``None`` for SQL NULL and :data:`UNCHANGED` for an unchanged
TOASTed value (``'u'``: an update that did not touch a large value leaves it out).

Messages this capture does not use (Origin, Type, logical Message) decode to :class:`Ignored`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from airflow_provider_sync.errors import TerminalError


class _Unchanged:
    """The marker of an unchanged TOASTed column value (``'u'``)."""

    _instance: _Unchanged | None = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()
Value = str | None | _Unchanged
Tuple = tuple[Value, ...]


@dataclass(frozen=True)
class Begin:
    final_lsn: int  # the LSN of the commit record
    commit_time: int  # microseconds since 2000-01-01
    xid: int


@dataclass(frozen=True)
class Commit:
    flags: int
    commit_lsn: int  # the LSN of the commit record
    end_lsn: int  # the end of the commit record: where a slot resumes after this transaction
    commit_time: int


@dataclass(frozen=True)
class RelationColumn:
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool


@dataclass(frozen=True)
class Relation:
    relation_id: int
    namespace: str
    name: str
    replica_identity: str  # 'd' default, 'n' nothing, 'f' full, 'i' index
    columns: tuple[RelationColumn, ...]


@dataclass(frozen=True)
class Insert:
    relation_id: int
    new: Tuple


@dataclass(frozen=True)
class Update:
    relation_id: int
    new: Tuple
    old: Tuple | None = None  # the old key ('K', when the key changed) or whole old row ('O', FULL)
    old_kind: str | None = None  # 'K' or 'O'


@dataclass(frozen=True)
class Delete:
    relation_id: int
    old: Tuple
    old_kind: str  # 'K' (key columns set, others null) or 'O' (the whole row, REPLICA IDENTITY FULL)


@dataclass(frozen=True)
class Truncate:
    relation_ids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True)
class Ignored:
    kind: str


Message = Begin | Commit | Relation | Insert | Update | Delete | Truncate | Ignored


class PgoutputError(TerminalError):
    """A message this decoder cannot read (corrupt, or a protocol version other than 1)."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, size: int) -> bytes:
        end = self.at + size
        if end > len(self.data):
            raise PgoutputError(f"pgoutput message ends early: wanted {size} bytes at offset {self.at}")
        chunk, self.at = self.data[self.at : end], end
        return chunk

    def int8(self) -> int:
        return self.take(1)[0]

    def int16(self) -> int:
        return int(struct.unpack("!h", self.take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack("!i", self.take(4))[0])

    def uint32(self) -> int:
        return int(struct.unpack("!I", self.take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack("!q", self.take(8))[0])

    def uint64(self) -> int:
        return int(struct.unpack("!Q", self.take(8))[0])

    def byte_char(self) -> str:
        return chr(self.int8())

    def string(self) -> str:
        end = self.data.find(b"\0", self.at)
        if end < 0:
            raise PgoutputError(f"pgoutput string at offset {self.at} has no terminating NUL")
        text, self.at = self.data[self.at : end].decode("utf-8"), end + 1
        return text

    def tuple_data(self) -> Tuple:
        values: list[Value] = []
        for _ in range(self.int16()):
            kind = self.byte_char()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind == "t":
                values.append(self.take(self.int32()).decode("utf-8"))
            else:
                raise PgoutputError(
                    f"pgoutput tuple column kind {kind!r} is not text/null/unchanged; binary tuple data "
                    "needs protocol version 2+, and this capture asks for version 1"
                )
        return tuple(values)


def _relation(reader: _Reader) -> Relation:
    relation_id = reader.uint32()
    namespace, name = reader.string(), reader.string()
    identity = reader.byte_char()
    columns = []
    for _ in range(reader.int16()):
        flags = reader.int8()
        columns.append(RelationColumn(reader.string(), reader.uint32(), reader.int32(), bool(flags & 1)))
    return Relation(relation_id, namespace, name, identity, tuple(columns))


def _update(reader: _Reader) -> Update:
    relation_id = reader.uint32()
    kind = reader.byte_char()
    if kind in ("K", "O"):
        old = reader.tuple_data()
        marker = reader.byte_char()
        if marker != "N":
            raise PgoutputError(f"pgoutput Update: expected the new tuple ('N'), got {marker!r}")
        return Update(relation_id, reader.tuple_data(), old, kind)
    if kind != "N":
        raise PgoutputError(f"pgoutput Update: unexpected tuple marker {kind!r}")
    return Update(relation_id, reader.tuple_data())


def _expect_new(reader: _Reader, what: str) -> None:
    marker = reader.byte_char()
    if marker != "N":
        raise PgoutputError(f"pgoutput {what}: expected the new tuple ('N'), got {marker!r}")


def decode(data: bytes | bytearray | memoryview) -> Message:
    """Decode one pgoutput message (protocol version 1)."""
    reader = _Reader(bytes(data))
    kind = reader.byte_char()
    if kind == "B":
        return Begin(reader.uint64(), reader.int64(), reader.uint32())
    if kind == "C":
        return Commit(reader.int8(), reader.uint64(), reader.uint64(), reader.int64())
    if kind == "R":
        return _relation(reader)
    if kind == "I":
        relation_id = reader.uint32()
        _expect_new(reader, "Insert")
        return Insert(relation_id, reader.tuple_data())
    if kind == "U":
        return _update(reader)
    if kind == "D":
        relation_id = reader.uint32()
        old_kind = reader.byte_char()
        if old_kind not in ("K", "O"):
            raise PgoutputError(f"pgoutput Delete: unexpected tuple marker {old_kind!r}")
        return Delete(relation_id, reader.tuple_data(), old_kind)
    if kind == "T":
        count, options = reader.int32(), reader.int8()
        ids = tuple(reader.uint32() for _ in range(count))
        return Truncate(ids, bool(options & 1), bool(options & 2))
    if kind in ("O", "Y", "M"):
        return Ignored(kind)
    raise PgoutputError(f"pgoutput message type {kind!r} is not one protocol version 1 defines")
