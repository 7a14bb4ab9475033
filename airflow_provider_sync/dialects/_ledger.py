"""The append ledger (one row per loaded range, written in the same transaction as the rows), and what
keeps pipelines from writing one target table by accident: the target lock and the owners table.

Loads into one target table serialize on a lock the target database holds (``target_lock_query``), and
each pipeline that loads a table records itself in ``sync_target_owners`` next to the ledger; a second
pipeline is refused unless every pipeline loading that table declares it shared (``target.shared``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from .dml import DMLSQL
from .types import Query, TableRef

if TYPE_CHECKING:
    import pyarrow as pa

LEDGER_COLUMNS = ("pipeline", "table_name", "range_start", "range_end", "run_id", "row_count", "loaded_at")
OWNERS_TABLE = "sync_target_owners"
OWNER_COLUMNS = ("target_table", "pipeline", "shared", "run_id", "claimed_at")


@cache
def owners_schema() -> pa.Schema:
    """Columns of the owners table: an append-only log, a pipeline's latest row says whether it shares."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("target_table", pa.string(), nullable=False),
            pa.field("pipeline", pa.string(), nullable=False),
            pa.field("shared", pa.bool_(), nullable=False),
            pa.field("run_id", pa.string()),
            pa.field("claimed_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )


def lock_digest(identity: str) -> bytes:
    """A stable digest of a target table's identity, to name its lock within any length limit."""
    return hashlib.sha256(f"airflow-provider-sync:{identity}".encode()).digest()


class LedgerSQL(DMLSQL):
    """DDL and statements of the ledger table; unique on (pipeline, table_name, range_start, range_end)."""

    def ledger_table_sql(self, ledger: TableRef) -> str:
        """``CREATE TABLE`` for the append ledger: one row per loaded range, unique on
        (pipeline, table_name, range_start, range_end)."""
        text = self.ledger_text_type()
        return (
            f"CREATE TABLE {self.qualify(ledger)} (\n"
            f"  {self.quote('pipeline')} {text} NOT NULL,\n"
            f"  {self.quote('table_name')} {text} NOT NULL,\n"
            f"  {self.quote('range_start')} {text} NOT NULL,\n"
            f"  {self.quote('range_end')} {text} NOT NULL,\n"
            f"  {self.quote('run_id')} {text},\n"
            f"  {self.quote('row_count')} BIGINT NOT NULL,\n"
            f"  {self.quote('loaded_at')} {self.ledger_timestamp_type()} NOT NULL,\n"
            f"  PRIMARY KEY ({self.column_list(LEDGER_COLUMNS[:4])})\n)"
        )

    def ledger_text_type(self) -> str:
        """A bounded text type usable in the ledger's composite primary key."""
        return "VARCHAR(180)"

    def ledger_timestamp_type(self) -> str:
        return "TIMESTAMP"

    def ledger_insert_query(self, ledger: TableRef, values: Sequence[Any]) -> Query:
        """Insert one ledger row; ``values`` follow :data:`LEDGER_COLUMNS`."""
        return self.insert_query(ledger, dict(zip(LEDGER_COLUMNS, values, strict=True)))

    def ledger_lookup_query(
        self, ledger: TableRef, pipeline: str, table_name: str, range_start: str
    ) -> Query:
        """Ledger rows of one pipeline and table starting at ``range_start`` (columns: range_end, run_id)."""
        where = {"pipeline": pipeline, "table_name": table_name, "range_start": range_start}
        return self.select_query(ledger, ["range_end", "run_id"], where)

    # ----------------------------------------------------------------- shared targets
    #: SQL giving the session's current schema (database), which a table without a schema lives in.
    current_schema_sql: ClassVar[str] = "SELECT CURRENT_SCHEMA"

    def target_identity(self, table: TableRef, current_schema: Any) -> str:
        """The name a target table is locked and claimed under: ``schema.table`` with the schema resolved,
        so ``orders`` and ``public.orders`` are the same table."""
        return f"{table.schema or current_schema}.{table.name}"

    def target_lock_query(self, identity: str) -> Query | None:
        """The statement that waits for, then holds, the exclusive lock on a target table until the load
        ends, or None where there is none (see ``Capabilities.target_lock``)."""
        return None

    def target_shared_lock_query(self, identity: str) -> Query | None:
        """The statement that takes the lock on a target table in shared mode until the load ends: the
        partitions of one read hold it together, while any other load waits for the exclusive one (None
        where the database has no shared mode, see ``Capabilities.target_lock_shared``)."""
        return None

    def target_lock_granted(self, cursor: Any) -> bool:
        """Whether the lock statement's cursor says the lock is held (statements that wait or raise: True)."""
        return True

    def owners_insert_query(self, owners: TableRef, values: Sequence[Any]) -> Query:
        """Record one claim; ``values`` follow :data:`OWNER_COLUMNS` (a plain INSERT: one row, no Arrow)."""
        return self.insert_query(owners, dict(zip(OWNER_COLUMNS, values, strict=True)))

    def owners_lookup_query(self, owners: TableRef, identity: str) -> Query:
        """Claims on one target table, oldest first (columns: pipeline, shared, run_id, claimed_at)."""
        where = {"target_table": identity}
        return self.select_query(owners, OWNER_COLUMNS[1:], where, order_by=["claimed_at"])
