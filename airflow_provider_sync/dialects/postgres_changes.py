"""PostgreSQL change data capture, decoding: ``pgoutput`` messages read from the slot grouped into whole
transactions, and the decoded rows (or a snapshot's rows) turned into Arrow change batches.

Split from :mod:`.postgres_capture` (which runs a capture): this is the pure data path from WAL messages to
staged batches, independent of how the slot is managed or how a run decides between snapshot and stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from airflow_provider_sync.cdc import pgoutput
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.postgres_slot import CdcNames, pg_lsn
from airflow_provider_sync.dialects.types import Column, TableRef
from airflow_provider_sync.errors import TerminalError


def table_columns(conn: Any, table: TableRef) -> list[Column]:
    """The table's columns typed as the extract types them (declared types ride along), all nullable:
    a staged delete holds only its key."""
    dialect = get_dialect("postgres")
    columns = dialect.get_columns(conn, table)
    conn.rollback()
    return [replace(c, declared=dialect.declared_type(c.db_type), nullable=True) for c in columns]


def _csv_field(value: pgoutput.Value) -> str:
    if value is None or value is pgoutput.UNCHANGED:
        return ""  # unquoted empty: NULL
    assert isinstance(value, str)
    return '"' + value.replace('"', '""') + '"'


@dataclass
class ChangeRows:
    """Decoded changes of one table collected into change batches (text values cast as the extract casts
    the same text from ``COPY``: one parser, one typing)."""

    table: TableRef
    columns: list[Column]
    keys: list[str]
    schema: pa.Schema
    transactions: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"insert": 0, "update": 0, "delete": 0})
    _relations: dict[int, list[int | None]] = field(default_factory=dict)
    _lines: list[str] = field(default_factory=list)
    _meta: list[tuple[str, str, list[str] | None]] = field(default_factory=list)
    _seq: int = 0
    _longest: int = 0

    @property
    def pending(self) -> int:
        return len(self._lines)

    @property
    def staged(self) -> int:
        return self._seq + len(self._lines)

    def add(self, message: pgoutput.Message, position: str) -> None:
        if isinstance(message, pgoutput.Relation):
            self._relation(message)
        elif isinstance(message, pgoutput.Insert):
            self._row("insert", self._values(message.relation_id, message.new), position)
        elif isinstance(message, pgoutput.Update):
            self._update(message, position)
        elif isinstance(message, pgoutput.Delete):
            self._row("delete", self._key_only(self._values(message.relation_id, message.old)), position)
        elif isinstance(message, pgoutput.Truncate):
            raise TerminalError(
                f"table {self.table} was truncated (at commit {position}); a truncate cannot be applied as "
                "row changes: drop the capture (drop_cdc) so the next run re-snapshots the table"
            )

    def _relation(self, message: pgoutput.Relation) -> None:
        if (message.name, message.namespace) != (self.table.name, self.table.schema or message.namespace):
            return
        by_name = {c.name: i for i, c in enumerate(message.columns)}
        self._relations[message.relation_id] = [by_name.get(c.name) for c in self.columns]

    def _values(self, relation_id: int, values: pgoutput.Tuple) -> list[pgoutput.Value]:
        mapping = self._relations.get(relation_id)
        if mapping is None:
            raise TerminalError(f"change of relation {relation_id} arrived before its Relation message")
        return [None if i is None else values[i] for i in mapping]

    def _key_only(self, values: list[pgoutput.Value]) -> list[pgoutput.Value]:
        keys = set(self.keys)
        return [v if c.name in keys else None for c, v in zip(self.columns, values, strict=True)]

    def _key(self, values: list[pgoutput.Value]) -> list[pgoutput.Value]:
        return [v for c, v in zip(self.columns, values, strict=True) if c.name in self.keys]

    def _update(self, message: pgoutput.Update, position: str) -> None:
        new = self._values(message.relation_id, message.new)
        old = self._values(message.relation_id, message.old) if message.old is not None else None
        if old is not None and message.old_kind == "O":  # the whole old row: unchanged values are in it
            unchanged = pgoutput.UNCHANGED
            new = [o if n is unchanged and o is not unchanged else n for n, o in zip(new, old, strict=True)]
        if old is not None and self._key(old) != self._key(new):
            self._row("delete", self._key_only(old), position)  # a key change: the old row goes
            self._row("insert", new, position)
            return
        self._row("update", new, position)

    def _row(self, op: str, values: list[pgoutput.Value], position: str) -> None:
        unchanged = [c.name for c, v in zip(self.columns, values, strict=True) if v is pgoutput.UNCHANGED]
        line = ",".join(_csv_field(v) for v in values) + "\n"
        self._lines.append(line)
        self._longest = max(self._longest, len(line))
        self._meta.append((op, position, unchanged or None))
        self.counts[op] += 1

    def flush(self) -> pa.RecordBatch:
        """The rows collected so far as one change batch."""
        from airflow_provider_sync.dialects._arrow import csv_batch

        block = "".join(self._lines).encode()
        data = csv_batch(
            block,
            self.columns,
            true_values=["t"],
            false_values=["f"],
            binary_decoder=lambda text: bytes.fromhex(text[2:]),
            longest_row=4 * self._longest,
        )
        first = self._seq
        self._seq += len(self._meta)
        metadata = [
            pa.array([m[0] for m in self._meta], pa.string()),
            pa.array([m[1] for m in self._meta], pa.string()),
            pa.array(range(first + 1, self._seq + 1), pa.int64()),
            pa.array([m[2] for m in self._meta], pa.list_(pa.string())),
        ]
        self._lines, self._meta, self._longest = [], [], 0
        arrays = [data.column(i).cast(self.schema.field(i).type) for i in range(data.num_columns)]
        return pa.RecordBatch.from_arrays([*arrays, *metadata], schema=self.schema)


def table_schema(columns: list[Column]) -> pa.Schema:
    from airflow_provider_sync.dialects._arrow import schema_of

    return schema_of(columns)


def as_inserts(batch: pa.RecordBatch, schema: pa.Schema, position: str, first_seq: int) -> pa.RecordBatch:
    rows = batch.num_rows
    metadata = [
        pa.array(["insert"] * rows, pa.string()),
        pa.array([position] * rows, pa.string()),
        pa.array(range(first_seq + 1, first_seq + rows + 1), pa.int64()),
        pa.nulls(rows, pa.list_(pa.string())),
    ]
    arrays = [batch.column(i).cast(schema.field(i).type) for i in range(batch.num_columns)]
    return pa.RecordBatch.from_arrays([*arrays, *metadata], schema=schema)


def transactions(
    conn: Any, names: CdcNames, end: int, fetch: int, messages: bool = False
) -> Iterator[tuple[int, list[pgoutput.Message]]]:
    """Whole transactions (commit end LSN, their messages) whose commit ends at or before ``end``, in
    commit order, read without consuming the slot."""
    cursor = conn.cursor(name=f"sync_cdc_{names.slot[:40]}")
    cursor.itersize = fetch
    options = ", 'messages', 'true'" if messages else ""  # heartbeats are logical messages
    cursor.execute(
        "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, NULL, "
        f"'proto_version', '1', 'publication_names', %s{options})",
        [names.slot, pg_lsn(end), names.publication],
    )
    current: list[pgoutput.Message] = []
    try:
        for (data,) in cursor:
            message = pgoutput.decode(data)
            if isinstance(message, pgoutput.Begin):
                current = []
            elif isinstance(message, pgoutput.Commit):
                if message.end_lsn > end:
                    break  # committed after the run's end: the next run's
                yield message.end_lsn, current
                current = []
            else:
                current.append(message)
    finally:
        cursor.close()
