"""Binlog row values -> the staged change batch of :mod:`.changes`, typed like the table's extract.

MariaDB (and MySQL without ``binlog_row_metadata=FULL``) logs no column names, character sets, signedness
or ENUM/SET labels in its table-map events: mysql-replication then names columns ``UNKNOWN_COL<n>``,
decodes binary columns as UTF-8 (failing on real bytes), reads unsigned integers as signed and returns
None for every ENUM. :func:`describe_binlog_columns` fills that metadata in by ordinal from
``information_schema`` before the rows are decoded, so both servers decode the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from airflow_provider_sync.cdc.changes import (
    METADATA_COLUMNS,
    OP_COLUMN,
    POSITION_COLUMN,
    SEQUENCE_COLUMN,
    ChangeOp,
)
from airflow_provider_sync.dialects.types import Column, TableRef
from airflow_provider_sync.errors import TerminalError

_EMPTY_SET = "empty set"  # pymysqlreplication.constants.NONE_SOURCE.EMPTY_SET
# The binlog's column type codes (pymysqlreplication.constants.FIELD_TYPE) each declared type is logged
# with: a mismatch means the table changed since the row was logged.
_TEXT = {249, 250, 251, 252, 245, 15, 253, 254}
_BINLOG_TYPES: dict[str, set[int]] = {
    "tinyint": {1}, "smallint": {2}, "mediumint": {9}, "int": {3}, "integer": {3}, "bigint": {8},
    "float": {4}, "double": {5}, "real": {5}, "decimal": {0, 246}, "numeric": {0, 246},
    "date": {10, 14}, "time": {11, 19}, "datetime": {12, 18}, "timestamp": {7, 17}, "year": {13},
    "bit": {16}, "enum": {247, 254}, "set": {248, 254},
    "char": _TEXT, "varchar": _TEXT, "binary": _TEXT, "varbinary": _TEXT, "json": _TEXT,
    "tinytext": _TEXT, "text": _TEXT, "mediumtext": _TEXT, "longtext": _TEXT,
    "tinyblob": _TEXT, "blob": _TEXT, "mediumblob": _TEXT, "longblob": _TEXT,
}  # fmt: skip
_LABEL = re.compile(r"'((?:[^']|'')*)'")


@dataclass(frozen=True)
class ColumnDetail:
    """What the binlog leaves out about one column, as ``information_schema.columns`` declares it."""

    name: str
    column_type: str  # e.g. "int(10) unsigned", "enum('a','b')"
    charset: str | None  # None for binary and non-text columns

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type.lower()

    @property
    def labels(self) -> list[str]:
        """The ENUM/SET labels in declaration order (empty for other types)."""
        lowered = self.column_type.lower()
        if not (lowered.startswith("enum(") or lowered.startswith("set(")):
            return []
        return [label.replace("''", "'") for label in _LABEL.findall(self.column_type)]


def read_column_details(dialect: Any, conn: Any, schema: str, table: str) -> list[ColumnDetail]:
    """The table's columns in ordinal order (the order binlog rows carry them)."""
    from airflow_provider_sync.dialects.types import Query

    cursor = dialect.execute(
        conn,
        Query(
            "SELECT column_name, column_type, character_set_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            [schema, table],
        ),
    )
    rows = cursor.fetchall()
    cursor.close()
    return [ColumnDetail(str(name), str(column_type), charset) for name, column_type, charset in rows]


def describe_binlog_columns(
    binlog_columns: Sequence[Any], details: Sequence[ColumnDetail], where: str
) -> None:
    """Give mysql-replication's column objects (of one table-map event) the names, character sets,
    signedness and labels of ``details``, matched by ordinal, before a rows event decodes with them."""
    if len(binlog_columns) != len(details):
        raise TerminalError(
            f"the binlog holds rows of {where} with {len(binlog_columns)} columns but the table now has "
            f"{len(details)}: its definition changed inside the captured binlog range, so old rows cannot be "
            "matched to columns; re-snapshot the table (airflow-sync cdc drop, then run the pipeline again)"
        )
    for column, detail in zip(binlog_columns, details, strict=True):
        logged_as = _BINLOG_TYPES.get(detail.column_type.lower().split("(")[0].split(" ")[0])
        if logged_as is not None and column.type not in logged_as:
            raise TerminalError(
                f"the binlog holds rows of {where} whose column {detail.name} has binlog type {column.type}, "
                f"which a {detail.column_type} column is not logged as: the column's type changed inside "
                f"the captured binlog range; re-snapshot the table (airflow-sync cdc drop, then run the "
                "pipeline again)"
            )
        column.name = detail.name
        column.unsigned = detail.unsigned
        # "binary" is no Python codec: mysql-replication then keeps the raw bytes instead of decoding.
        column.character_set_name = detail.charset or "binary"
        labels = detail.labels
        if labels and detail.column_type.lower().startswith("enum("):
            column.enum_values = ["", *labels]  # index 0 is the empty "error" value
        elif labels:
            column.set_values = labels


def _json_text(value: Any) -> str:
    """MySQL's binary JSON decodes to Python values (keys and strings possibly bytes); MariaDB's JSON is
    text already."""

    def plain(item: Any) -> Any:
        if isinstance(item, bytes):
            return item.decode()
        if isinstance(item, dict):
            return {plain(k): plain(v) for k, v in item.items()}
        if isinstance(item, list):
            return [plain(v) for v in item]
        return item

    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode()
    return json.dumps(plain(value))


def normalize_value(value: Any, column: Column, detail: ColumnDetail) -> Any:
    """A decoded binlog value as the MySQLdb driver returns it for the same column, so the dialect's
    converters (booleans, TIME, text/bytes) apply unchanged."""
    if value is None:
        return None
    lowered = detail.column_type.lower()
    if isinstance(value, (set, frozenset)):  # SET: comma-joined labels in declaration order
        return ",".join(label for label in detail.labels if label in value)
    if lowered.startswith("bit") and isinstance(value, str):  # BIT: mysql-replication gives '0101'
        return int(value, 2).to_bytes((len(value) + 7) // 8 or 1, "big")
    if column.db_type == "json" or lowered == "json":
        return _json_text(value)
    return value


def row_changes(
    kind: str,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    details: Sequence[ColumnDetail],
    key_columns: Sequence[str],
) -> Iterator[tuple[ChangeOp, tuple[Any, ...]]]:
    """The staged changes of one rows event (``kind`` ``write``/``update``/``delete``) as (op, values):
    a delete keeps only the key; an update that changes the key is a delete of the old key and an insert."""
    keys = [i for i, c in enumerate(columns) if c.name in set(key_columns)]

    def values(row: Mapping[str, Any], image: str) -> tuple[Any, ...]:
        found, none_sources = row[f"{image}values"], row.get(f"{image}none_sources") or {}
        return tuple(
            # mysql-replication gives None for an empty SET too; its none source tells them apart.
            ""
            if found[c.name] is None and none_sources.get(c.name) == _EMPTY_SET
            else normalize_value(found[c.name], c, d)
            for c, d in zip(columns, details, strict=True)
        )

    def key_only(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(v if i in keys else None for i, v in enumerate(row))

    for row in rows:
        if kind == "write":
            yield "insert", values(row, "")
        elif kind == "delete":
            yield "delete", key_only(values(row, ""))
        else:
            before, after = values(row, "before_"), values(row, "after_")
            if [before[i] for i in keys] != [after[i] for i in keys]:
                yield "delete", key_only(before)
                yield "insert", after
            else:
                yield "update", after


def change_schema(columns: Sequence[Column], key_columns: Sequence[str]) -> pa.Schema:
    """The table's columns (non-key ones nullable: a delete carries only the key) plus the metadata."""
    from airflow_provider_sync.dialects._arrow import schema_of

    keys = set(key_columns)
    table = schema_of([c if c.name in keys else replace(c, nullable=True) for c in columns])
    return pa.schema(
        [
            *table,
            pa.field(OP_COLUMN, pa.string(), False),
            pa.field(POSITION_COLUMN, pa.string(), False),
            pa.field(SEQUENCE_COLUMN, pa.int64(), False),
        ],
        metadata=table.metadata,
    )


@dataclass(frozen=True)
class CaptureTable:
    """The captured table: its columns (typed as the extract types them), key and binlog details."""

    ref: TableRef
    columns: list[Column]
    key_columns: list[str]
    details: list[ColumnDetail]

    @property
    def schema(self) -> pa.Schema:
        return change_schema(self.columns, self.key_columns)


@dataclass(frozen=True)
class Change:
    """One staged change: the row values in table column order."""

    op: ChangeOp
    position: str
    values: tuple[Any, ...]


def changes_to_batch(
    changes: Sequence[Change],
    columns: Sequence[Column],
    schema: pa.Schema,
    converter_for: Any,
    first_seq: int,
) -> pa.RecordBatch:
    """A change batch; ``_sync_seq`` counts on from ``first_seq``."""
    from airflow_provider_sync.dialects._arrow import rows_to_batch

    table_part = rows_to_batch([c.values for c in changes], list(columns), converter_for)
    arrays = [
        *table_part.columns,
        pa.array([c.op for c in changes], pa.string()),
        pa.array([c.position for c in changes], pa.string()),
        pa.array(range(first_seq, first_seq + len(changes)), pa.int64()),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def with_change_columns(
    batch: pa.RecordBatch, schema: pa.Schema, op: ChangeOp, position: str, first_seq: int
) -> pa.RecordBatch:
    """A batch of table rows (a snapshot read) as change batch rows of one op and position."""
    rows = batch.num_rows
    arrays = [
        *batch.columns,
        pa.array([op] * rows, pa.string()),
        pa.array([position] * rows, pa.string()),
        pa.array(range(first_seq, first_seq + rows), pa.int64()),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


__all__ = [
    "METADATA_COLUMNS",
    "CaptureTable",
    "Change",
    "ColumnDetail",
    "change_schema",
    "changes_to_batch",
    "describe_binlog_columns",
    "normalize_value",
    "read_column_details",
    "row_changes",
    "with_change_columns",
]
