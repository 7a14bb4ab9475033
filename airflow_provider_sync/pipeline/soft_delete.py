"""Deletes a source marks with a flag column (``deletes.soft_delete_column``), applied in the load's
transaction: flagged rows are not upserted; their keys go to a temporary work table, and the target rows
with those keys are deleted once the other rows are merged. A run's keys are unique (upsert refuses
duplicates), so the order of the two never matters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.dialects import changes_sql

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.dialects.base import Dialect
    from airflow_provider_sync.dialects.types import TableRef

KEYS_SUFFIX = "__sync_deleted_keys"


def deletion_marker(dialect: Dialect, spec: Any) -> str | None:
    """The marker column a table engine deletes by (ClickHouse's ``is_deleted``), when this load has
    flagged rows and the dialect deletes that way; None otherwise."""
    if spec.soft_delete_column is None or dialect.capabilities.soft_delete != "marker_column":
        return None
    marker = getattr(spec.table_options, "is_deleted_column", None)
    return str(marker) if marker else None


def marked_rows(batches: Iterator[pa.RecordBatch], flag: str, marker: str) -> Iterator[pa.RecordBatch]:
    """Every row, with ``marker`` = 1 where the source flags it deleted (0 elsewhere)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from airflow_provider_sync.core.deletes import flagged_mask

    for batch in batches:
        column = pc.cast(flagged_mask(batch, flag), pa.uint8())
        yield batch.append_column(pa.field(marker, pa.uint8(), nullable=False), column)


class FlaggedDeletes:
    """Separates flagged rows from a stream of batches and deletes their keys from the target."""

    def __init__(self, dialect: Dialect, conn: Any, target: TableRef, keys: tuple[str, ...], column: str):
        self.dialect, self.conn, self.target = dialect, conn, target
        self.keys, self.column = keys, column
        self.work = changes_sql.work_table(dialect, target, KEYS_SUFFIX)
        self.flagged = 0
        self.deleted = 0
        for statement in changes_sql.create_work_table_sql(dialect, self.work, target, keys):
            self._run(statement)

    def _run(self, statement: str) -> int:
        cursor = self.dialect.execute(self.conn, statement)
        count = int(cursor.rowcount or 0)
        cursor.close()
        return count

    def rows_to_load(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """The unflagged rows of ``batches``; the flagged ones' keys are staged for :meth:`apply`."""
        from airflow_provider_sync.core.deletes import split_flagged

        for batch in batches:
            kept, deleted = split_flagged(batch, self.column, self.keys)
            if deleted.num_rows:
                self.flagged += self.dialect.bulk_insert(self.conn, self.work, [deleted])
            yield kept

    def apply(self) -> int:
        """Delete the target rows whose key was flagged; returns how many the target held."""
        if self.flagged:
            statement = changes_sql.delete_by_keys_sql(self.dialect, self.target, self.work, self.keys)
            self.deleted = self._run(statement)
        return self.deleted
