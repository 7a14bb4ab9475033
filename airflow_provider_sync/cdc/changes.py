"""The shape of a staged change batch, shared by every capture and by the apply path.

A change batch holds the table's columns (the row *after* the change; for a delete, the key columns of the
deleted row and nulls elsewhere) followed by three metadata columns:

- ``_sync_op``: ``"insert"``, ``"update"`` or ``"delete"`` (dictionary-free ``string``);
- ``_sync_position``: the change's position in the source log as sortable text (a PostgreSQL LSN as
  16 hex digits ``"00000000016B3748"``, a binlog ``"<file>:<offset 20 digits>"`` or a GTID set), so ordering
  the text orders the changes;
- ``_sync_seq``: ``int64``, the change's ordinal within the run, strictly increasing in log order (ties of
  ``_sync_position`` inside one transaction keep their order through it).

An update that changes the key is staged as a delete of the old key followed by an insert of the new row.
"""

from __future__ import annotations

from typing import Any, Final, Literal

OP_COLUMN: Final = "_sync_op"
POSITION_COLUMN: Final = "_sync_position"
SEQUENCE_COLUMN: Final = "_sync_seq"
METADATA_COLUMNS: Final = (OP_COLUMN, POSITION_COLUMN, SEQUENCE_COLUMN)

ChangeOp = Literal["insert", "update", "delete"]
CHANGE_OPS: Final[tuple[ChangeOp, ...]] = ("insert", "update", "delete")


def lsn_text(lsn: int) -> str:
    """A PostgreSQL LSN as the sortable text of ``_sync_position``."""
    return f"{lsn:016X}"


def lsn_from_text(text: str) -> int:
    """The LSN of ``_sync_position`` text, or of PostgreSQL's own ``16/B374D848`` spelling."""
    if "/" in text:
        high, _, low = text.partition("/")
        return (int(high, 16) << 32) | int(low, 16)
    return int(text, 16)


def binlog_position_text(file: str, offset: int) -> str:
    """A binlog file and offset as the sortable text of ``_sync_position``."""
    return f"{file}:{offset:020d}"


# ----------------------------------------------------------------- additions (PostgreSQL capture)
#: Optional fourth metadata column, ``list<string>``: the columns an update left out because their value
#: did not change (PostgreSQL's unchanged TOASTed values). They are null in the row; the apply keeps the
#: target's value for them. Captures that always send whole rows leave the column out.
UNCHANGED_COLUMN: Final = "_sync_unchanged"
ALL_METADATA_COLUMNS: Final = (*METADATA_COLUMNS, UNCHANGED_COLUMN)


def change_schema(table_schema: Any) -> Any:
    """The Arrow schema of a change batch for a table of ``table_schema``: the table's fields (nullable:
    a delete carries only the key) followed by the metadata columns, ``_sync_unchanged`` included."""
    import pyarrow as pa

    fields = [field.with_nullable(True) for field in table_schema]
    fields += [
        pa.field(OP_COLUMN, pa.string(), nullable=False),
        pa.field(POSITION_COLUMN, pa.string(), nullable=False),
        pa.field(SEQUENCE_COLUMN, pa.int64(), nullable=False),
        pa.field(UNCHANGED_COLUMN, pa.list_(pa.string())),
    ]
    return pa.schema(fields)
