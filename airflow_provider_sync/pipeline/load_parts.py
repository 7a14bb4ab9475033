"""What every load mode is built from: the target table created or checked, the staged batches read with
progress, rows inserted (rejected ones isolated), and what a load reports."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.core.kinds import type_kind
from airflow_provider_sync.errors import IncompatibleSchemaError, TerminalError
from airflow_provider_sync.staging.files import read_manifest
from airflow_provider_sync.staging.manifest import Manifest

from .progress import ProgressReporter
from .quarantine import LoadRejects
from .specs import LoadSpec

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.dialects.base import Dialect
    from airflow_provider_sync.dialects.types import TableRef


@dataclass(frozen=True)
class LoadResult:
    """What one load did. ``ledger_skipped``: the range was already loaded (append), nothing written."""

    mode: str
    rows_staged: int
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    ledger_skipped: bool = False
    created_table: bool = False
    range_start: str | None = None
    range_end: str | None = None
    quarantined: int = 0
    deleted: int = 0  # target rows deleted because the source flagged them (deletes.soft_delete_column)
    flagged: int = 0  # staged rows the source flagged as deleted (not loaded)
    seconds: float = 0.0  # the load's own time, connect to commit: its rows/s

    @property
    def rows_loaded(self) -> int:
        return self.inserted + self.updated

    def summary(self) -> str:
        """One short log line: what was written, and how fast."""
        from .progress import format_duration, format_rate

        if self.ledger_skipped:
            return f"{self.mode}, range already loaded: nothing written ({self.rows_staged:,} rows staged)"
        rows = f"{self.rows_loaded:,} rows"
        if self.rows_loaded != self.rows_staged:
            rows += f" of {self.rows_staged:,} staged"
        counts = f"{self.inserted:,} inserted"
        if self.mode == "upsert":
            counts += f", {self.updated:,} updated, {self.unchanged:,} unchanged"
        if self.quarantined:
            counts += f", {self.quarantined:,} quarantined"
        if self.flagged:
            counts += f", {self.deleted:,} deleted ({self.flagged:,} flagged)"
        return (
            f"{self.mode}, {rows} ({counts}) in {format_duration(self.seconds)}, "
            f"{format_rate(self.rows_loaded, self.seconds)}"
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rows_loaded": self.rows_loaded}


# Which staged Arrow type families each target column family accepts.
_ACCEPTS: dict[str, set[str]] = {
    "boolean": {"boolean", "integer", "null"},
    "integer": {"integer", "boolean", "null"},
    "float": {"integer", "float", "decimal", "null"},
    "decimal": {"integer", "decimal", "float", "null"},
    "timestamp": {"timestamp", "date", "null"},
    "date": {"date", "timestamp", "null"},
    "time": {"time", "null"},
    "binary": {"binary", "null"},
}


def check_compatible(
    dialect: Dialect, conn: Any, target: TableRef, schema: pa.Schema, keys: tuple[str, ...]
) -> None:
    """Raise IncompatibleSchemaError naming every staged column the existing target cannot take."""
    target_columns = {c.name: c for c in dialect.get_columns(conn, target)}
    missing = [name for name in schema.names if name not in target_columns]
    if missing:
        raise IncompatibleSchemaError(
            f"target table {target} has no column(s) {', '.join(missing)} (it has "
            f"{', '.join(target_columns)}); add them to the target, or rename/drop them in a schema_map step"
        )
    mismatched = []
    for field in schema:
        column = target_columns[field.name]
        accepted = _ACCEPTS.get(type_kind(column.arrow_type))
        if accepted is not None and type_kind(field.type) not in accepted:
            mismatched.append(f"{field.name} ({field.type} into {column.db_type})")
    if mismatched:
        raise IncompatibleSchemaError(
            f"target table {target} cannot take column(s) {'; '.join(mismatched)}; change the target column "
            "types or cast the columns in a schema_map step"
        )
    absent_keys = [k for k in keys if k not in schema.names]
    if absent_keys:
        raise IncompatibleSchemaError(
            f"load keys {', '.join(absent_keys)} are not among the staged columns ({', '.join(schema.names)})"
        )


def check_upsert_keys(dialect: Dialect, conn: Any, spec: LoadSpec) -> None:
    """An upsert needs a unique constraint on exactly its keys; without one, MySQL would silently append
    duplicates and PostgreSQL would refuse the statement."""
    unique = dialect.get_unique_keys(conn, spec.target)
    if not any(set(columns) == set(spec.keys) for columns in unique):
        found = "; ".join(f"({', '.join(c)})" for c in unique) or "none"
        raise IncompatibleSchemaError(
            f"upsert keys ({', '.join(spec.keys)}) need a primary key or unique index on exactly those "
            f"columns in target table {spec.target} (unique keys found: {found}); add one, or change keys"
        )


def create_sql(dialect: Dialect, table: TableRef, spec: LoadSpec, schema: pa.Schema) -> str:
    """``CREATE TABLE`` for a new target, with the dialect-specific layout the YAML asked for, if any."""
    if spec.table_options is None:
        return dialect.create_table_sql(table, schema, spec.keys)
    # Only the dialect the options name takes them; LoadSpec checked that this is that dialect.
    return dialect.create_table_sql(table, schema, spec.keys, options=spec.table_options)  # type: ignore[call-arg]


def ensure_table(dialect: Dialect, conn: Any, spec: LoadSpec, schema: pa.Schema) -> bool:
    """Create the target when missing (and allowed); check it can take the rows when present."""
    if dialect.table_exists(conn, spec.target):
        check_compatible(dialect, conn, spec.target, schema, spec.keys)
        return False
    if not spec.create_if_missing:
        raise TerminalError(
            f"target table {spec.target} does not exist and create_if_missing is false; create the table "
            "or set create_if_missing: true"
        )
    dialect.execute(conn, create_sql(dialect, spec.target, spec, schema)).close()
    return True


def ddl_checkpoint(dialect: Dialect, conn: Any) -> None:
    """Where DDL commits implicitly anyway, commit explicitly and start the data transaction afresh."""
    if not dialect.capabilities.transactional_ddl:
        conn.commit()
        dialect.begin_write(conn)


def staged_batches(manifest: Manifest, logger: logging.Logger, label: str) -> Iterator[pa.RecordBatch]:
    progress = ProgressReporter(logger, label, total=manifest.rows or None)
    for batch in read_manifest(manifest):  # each file checked against its rows and SHA-256
        yield batch  # counted once written: the percent tells what the target already has
        progress.add(batch.num_rows)
    progress.finish(log=False)  # the load's summary line follows, timed connect to commit


def insert_rows(
    dialect: Dialect, conn: Any, table: TableRef, rows: Iterator[pa.RecordBatch], rejects: LoadRejects | None
) -> int:
    if rejects is None:
        return dialect.bulk_insert(conn, table, rows)
    return sum(rejects.write(dialect, conn, rows, lambda batch: dialect.bulk_insert(conn, table, [batch])))
