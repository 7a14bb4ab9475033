"""The append ledger: one row per loaded range, written in the same transaction as the rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._names import SQLNames
from .types import Binder, Query, TableRef

LEDGER_COLUMNS = ("pipeline", "table_name", "range_start", "range_end", "run_id", "row_count", "loaded_at")


class LedgerSQL(SQLNames):
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
        bind = Binder(self.capabilities.param_style)
        placeholders = ", ".join(bind(v) for v in values)
        return bind.query(
            f"INSERT INTO {self.qualify(ledger)} ({self.column_list(LEDGER_COLUMNS)}) VALUES ({placeholders})"
        )

    def ledger_lookup_query(
        self, ledger: TableRef, pipeline: str, table_name: str, range_start: str
    ) -> Query:
        """Ledger rows of one pipeline and table starting at ``range_start`` (columns: range_end, run_id)."""
        bind = Binder(self.capabilities.param_style)
        return bind.query(
            f"SELECT {self.quote('range_end')}, {self.quote('run_id')} FROM {self.qualify(ledger)} "
            f"WHERE {self.quote('pipeline')} = {bind(pipeline)} AND {self.quote('table_name')} = "
            f"{bind(table_name)} AND {self.quote('range_start')} = {bind(range_start)}"
        )
