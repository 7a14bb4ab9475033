"""Loading staged rows into the target: one transaction per run and table, all or nothing.

With ``on_load_error="quarantine"`` rows the target rejects for their values are isolated (see
:mod:`.quarantine`) and written to the quarantine table; the other rows still commit in the one transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.core.watermark import ExtractRange, boundary_label, decode_value, to_source_naive
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.types import LoadCounts, TableRef
from airflow_provider_sync.errors import IncompatibleSchemaError, TerminalError, WatermarkError
from airflow_provider_sync.staging.files import read_manifest
from airflow_provider_sync.staging.manifest import Manifest

from .extract import driver_errors, open_connection
from .ownership import claim_target
from .progress import ProgressReporter
from .quarantine import LoadRejects, QuarantineWriter
from .soft_delete import FlaggedDeletes, deletion_marker, marked_rows
from .specs import LoadSpec

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.dialects.base import Dialect

log = logging.getLogger(__name__)
ON_LOAD_ERROR = ("fail", "quarantine")

# Which staged Arrow type families each target column family accepts.
_ACCEPTS: dict[str, set[str]] = {
    "bool": {"bool", "integer", "null"},
    "integer": {"integer", "bool", "null"},
    "float": {"integer", "float", "decimal", "null"},
    "decimal": {"integer", "decimal", "float", "null"},
    "timestamp": {"timestamp", "date", "null"},
    "date": {"date", "timestamp", "null"},
    "time": {"time", "null"},
    "binary": {"binary", "null"},
}


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


def _family(kind: pa.DataType) -> str:
    import pyarrow as pa

    checks = [
        ("bool", pa.types.is_boolean),
        ("integer", pa.types.is_integer),
        ("float", pa.types.is_floating),
        ("decimal", pa.types.is_decimal),
        ("timestamp", pa.types.is_timestamp),
        ("date", pa.types.is_date),
        ("time", pa.types.is_time),
        ("null", pa.types.is_null),
        ("binary", lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t)),
    ]
    return next((name for name, check in checks if check(kind)), "string")


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
        accepted = _ACCEPTS.get(_family(column.arrow_type))
        if accepted is not None and _family(field.type) not in accepted:
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


def _check_upsert_keys(dialect: Dialect, conn: Any, spec: LoadSpec) -> None:
    """An upsert needs a unique constraint on exactly its keys; without one, MySQL would silently append
    duplicates and PostgreSQL would refuse the statement."""
    unique = dialect.get_unique_keys(conn, spec.target)
    if not any(set(columns) == set(spec.keys) for columns in unique):
        found = "; ".join(f"({', '.join(c)})" for c in unique) or "none"
        raise IncompatibleSchemaError(
            f"upsert keys ({', '.join(spec.keys)}) need a primary key or unique index on exactly those "
            f"columns in target table {spec.target} (unique keys found: {found}); add one, or change keys"
        )


def _create_sql(dialect: Dialect, table: TableRef, spec: LoadSpec, schema: pa.Schema) -> str:
    """``CREATE TABLE`` for a new target, with the dialect-specific layout the YAML asked for, if any."""
    if spec.table_options is None:
        return dialect.create_table_sql(table, schema, spec.keys)
    # Only the dialect the options name takes them; LoadSpec checked that this is that dialect.
    return dialect.create_table_sql(table, schema, spec.keys, options=spec.table_options)  # type: ignore[call-arg]


def _ensure_table(dialect: Dialect, conn: Any, spec: LoadSpec, schema: pa.Schema) -> bool:
    """Create the target when missing (and allowed); check it can take the rows when present."""
    if dialect.table_exists(conn, spec.target):
        check_compatible(dialect, conn, spec.target, schema, spec.keys)
        return False
    if not spec.create_if_missing:
        raise TerminalError(
            f"target table {spec.target} does not exist and create_if_missing is false; create the table "
            "or set create_if_missing: true"
        )
    dialect.execute(conn, _create_sql(dialect, spec.target, spec, schema)).close()
    return True


def _ddl_checkpoint(dialect: Dialect, conn: Any) -> None:
    """Where DDL commits implicitly anyway, commit explicitly and start the data transaction afresh."""
    if not dialect.capabilities.transactional_ddl:
        conn.commit()
        dialect.begin_write(conn)


def load_from_staging(
    spec: LoadSpec,
    manifest: Manifest,
    *,
    logger: logging.Logger | None = None,
    before_commit: Callable[[], None] | None = None,
    on_load_error: str = "fail",
    quarantine: QuarantineWriter | TableRef | None = None,
) -> LoadResult:
    """Load the manifest's staged rows into ``spec.target`` with ``spec.mode``, in one transaction.

    ``append`` records the range in the ledger in the same transaction and skips a range already loaded;
    ``upsert`` merges by ``spec.keys`` through a staging table, rewriting only changed rows; ``replace``
    loads a new table and swaps it in. Any failure rolls back: the target is left as it was.
    ``before_commit`` runs just before the commit (the place where the commit would be lost).

    ``on_load_error="quarantine"`` isolates rows the target rejects for their values (constraint
    violations, values too long or out of range) and writes them to ``quarantine``: a table in the target
    database (default ``sync_quarantine`` in the target's schema; written in the load transaction) or an
    open :class:`QuarantineWriter` (its own connection). Lost connections and other errors still fail.
    """
    if on_load_error not in ON_LOAD_ERROR:
        raise TerminalError(f"on_load_error {on_load_error!r} is not allowed; use one of: fail, quarantine")
    logger = logger or log
    dialect = get_dialect(spec.connection.conn_type)
    schema = manifest.arrow_schema
    marker = deletion_marker(dialect, spec)
    if marker is not None:
        schema = _with_marker(schema, marker)
    started = time.monotonic()
    with driver_errors(dialect):
        conn = open_connection(dialect, spec)
        try:
            dialect.begin_write(conn)
            claim_target(dialect, conn, spec, manifest, logger)  # the table's lock, and who may load it
            rejects = (
                LoadRejects.open(dialect, conn, spec.target, manifest, quarantine)
                if on_load_error == "quarantine"
                else None
            )
            if spec.mode == "replace":
                result = _replace(dialect, conn, spec, manifest, schema, logger, before_commit, rejects)
            else:
                result = _append_or_upsert(
                    dialect, conn, spec, manifest, schema, logger, before_commit, rejects
                )
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
    result = replace(result, seconds=round(time.monotonic() - started, 3))
    logger.info("load %s: %s", spec.target, result.summary())
    return result


def _with_marker(schema: pa.Schema, marker: str) -> pa.Schema:
    import pyarrow as pa

    if marker in schema.names:
        raise TerminalError(
            f"the deletion marker column {marker!r} is already a staged column; name another one with "
            "target.clickhouse.is_deleted_column"
        )
    return schema.append(pa.field(marker, pa.uint8(), nullable=False))


def _batches(manifest: Manifest, logger: logging.Logger, label: str) -> Iterator[pa.RecordBatch]:
    progress = ProgressReporter(logger, label, total=manifest.rows or None)
    for batch in read_manifest(manifest):  # each file checked against its rows and SHA-256
        yield batch  # counted once written: the percent tells what the target already has
        progress.add(batch.num_rows)
    progress.finish(log=False)  # the load's summary line follows, timed connect to commit


def _append_or_upsert(
    dialect: Dialect,
    conn: Any,
    spec: LoadSpec,
    manifest: Manifest,
    schema: pa.Schema,
    logger: logging.Logger,
    before_commit: Callable[[], None] | None,
    rejects: LoadRejects | None,
) -> LoadResult:
    created = _ensure_table(dialect, conn, spec, schema)
    if spec.mode == "upsert" and not created:
        _check_upsert_keys(dialect, conn, spec)
    _ddl_checkpoint(dialect, conn)
    label = f"load {spec.target}"
    if spec.mode == "upsert":
        rows = _batches(manifest, logger, label)
        flagged = None
        marker = deletion_marker(dialect, spec)
        if marker is not None:
            rows = marked_rows(rows, str(spec.soft_delete_column), marker)
        elif spec.soft_delete_column is not None:
            flagged = FlaggedDeletes(dialect, conn, spec.target, spec.keys, spec.soft_delete_column)
            rows = flagged.rows_to_load(rows)
        staging = dialect.create_staging_table(conn, spec.target, schema.names)
        if rejects is None:
            staged = dialect.bulk_insert(conn, staging, rows)
            counts = dialect.upsert(conn, staging, spec.target, schema.names, spec.keys, staged)
        else:
            counts = _upsert_isolating(dialect, conn, spec, staging, schema, rejects, rows)
        deleted = flagged.apply() if flagged is not None else 0
        if before_commit:
            before_commit()
        conn.commit()
        return LoadResult(
            "upsert",
            manifest.rows,
            counts.inserted,
            counts.updated,
            counts.unchanged,
            created_table=created,
            quarantined=rejects.count if rejects else 0,
            deleted=deleted,
            flagged=flagged.flagged if flagged is not None else 0,
        )
    range_start, range_end = _ledger_labels(manifest)
    if _ledger_table(dialect, conn, spec):
        _ddl_checkpoint(dialect, conn)
    batches: Any = _batches(manifest, logger, label)
    existing = _ledger_ends(dialect, conn, spec, manifest, range_start)
    if range_end in existing:
        logger.warning(
            "load %s: range %s .. %s was already loaded (run %s); skipping it",
            spec.target,
            range_start,
            range_end,
            existing[range_end],
        )
        conn.rollback()
        return LoadResult(
            "append",
            manifest.rows,
            ledger_skipped=True,
            created_table=created,
            range_start=range_start,
            range_end=range_end,
        )
    if existing and manifest.rows:
        # A run from the same start committed a shorter range; load only the rows after its end.
        batches = _after_loaded(batches, manifest, max(existing, key=_label_order))
    try:
        dialect.execute(
            conn,
            dialect.ledger_insert_query(
                spec.ledger,
                [
                    spec.pipeline,
                    manifest.table,
                    range_start,
                    range_end,
                    manifest.run_id,
                    manifest.rows,
                    dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
                ],
            ),
        ).close()
    except Exception as exc:
        if not dialect.is_unique_violation(exc):
            raise
        conn.rollback()
        logger.warning(
            "load %s: range %s .. %s was loaded concurrently; skipping it",
            spec.target,
            range_start,
            range_end,
        )
        return LoadResult(
            "append",
            manifest.rows,
            ledger_skipped=True,
            created_table=created,
            range_start=range_start,
            range_end=range_end,
        )
    inserted = _insert(dialect, conn, spec.target, batches, rejects)
    if before_commit:
        before_commit()
    conn.commit()
    return LoadResult(
        "append",
        manifest.rows,
        inserted,
        created_table=created,
        range_start=range_start,
        range_end=range_end,
        quarantined=rejects.count if rejects else 0,
    )


def _insert(
    dialect: Dialect, conn: Any, table: TableRef, rows: Iterator[pa.RecordBatch], rejects: LoadRejects | None
) -> int:
    if rejects is None:
        return dialect.bulk_insert(conn, table, rows)
    return sum(rejects.write(dialect, conn, rows, lambda batch: dialect.bulk_insert(conn, table, [batch])))


def _upsert_isolating(
    dialect: Dialect,
    conn: Any,
    spec: LoadSpec,
    staging: TableRef,
    schema: pa.Schema,
    rejects: LoadRejects,
    batches: Iterator[pa.RecordBatch],
) -> LoadCounts:
    """Upsert batch by batch, so a rejected batch can be rolled back to its savepoint and bisected."""

    def apply(batch: pa.RecordBatch) -> LoadCounts:
        dialect.execute(conn, dialect.delete_query(staging)).close()
        staged = dialect.bulk_insert(conn, staging, [batch])
        return dialect.upsert(conn, staging, spec.target, schema.names, spec.keys, staged)

    results = rejects.write(dialect, conn, batches, apply)
    return LoadCounts(
        sum(c.inserted for c in results), sum(c.updated for c in results), sum(c.unchanged for c in results)
    )


def _ledger_labels(manifest: Manifest) -> tuple[str, str]:
    range_ = ExtractRange.from_json(manifest.range or {"mode": "full"})
    if range_.mode == "full":
        label = f"full:{manifest.run_id}"
        if range_.partition is not None:
            label = f"{label}#{range_.partition.name}"
        return label, label
    start = range_.label()
    if manifest.last:
        end = boundary_label(
            decode_value(manifest.last["cursor"]),
            tuple(decode_value(v) for v in manifest.last.get("key", [])),
        )
    else:
        end = f"empty:{start}"
    return start, end


def _label_order(label: str) -> tuple[Any, ...]:
    if label.startswith("sha256:"):
        return ()
    cursor, key, _inclusive = (decode_value(v) for v in json.loads(label))
    return (cursor, *key)


def _ledger_table(dialect: Dialect, conn: Any, spec: LoadSpec) -> bool:
    if dialect.table_exists(conn, spec.ledger):
        return False
    dialect.execute(conn, dialect.ledger_table_sql(spec.ledger)).close()
    return True


def _ledger_ends(
    dialect: Dialect, conn: Any, spec: LoadSpec, manifest: Manifest, start: str
) -> dict[str, str]:
    cursor = dialect.execute(
        conn, dialect.ledger_lookup_query(spec.ledger, spec.pipeline, manifest.table, start)
    )
    rows = cursor.fetchall()
    cursor.close()
    return {end: run_id for end, run_id in rows if not str(end).startswith(("empty:", "full:"))}


def _after_loaded(
    batches: Iterator[pa.RecordBatch], manifest: Manifest, loaded_end: str
) -> Iterator[pa.RecordBatch]:
    from airflow_provider_sync.core.batches import rows_after

    if loaded_end.startswith("sha256:") or not manifest.cursor_column:
        raise WatermarkError(
            f"the ledger shows a shorter load of this range by an earlier run but its end ({loaded_end}) "
            "cannot be compared; clear the watermark and the ledger rows of this table to re-sync"
        )
    cursor, key, _inclusive = (decode_value(v) for v in json.loads(loaded_end))
    columns = [manifest.cursor_column, *manifest.key_columns][: 1 + len(key)]
    field = manifest.arrow_schema.field(manifest.cursor_column)
    if isinstance(cursor, dt.datetime) and field.type.tz is None:
        cursor = to_source_naive(cursor, manifest.source_timezone)
    for batch in batches:
        yield rows_after(batch, columns, [cursor, *key])


def _replace(
    dialect: Dialect,
    conn: Any,
    spec: LoadSpec,
    manifest: Manifest,
    schema: pa.Schema,
    logger: logging.Logger,
    before_commit: Callable[[], None] | None,
    rejects: LoadRejects | None,
) -> LoadResult:
    target = spec.target
    loaded = dialect.helper_table(target, "__sync_new")
    exists = dialect.table_exists(conn, target)
    if not exists and not spec.create_if_missing:
        raise TerminalError(
            f"target table {target} does not exist and create_if_missing is false; create the table or set "
            "create_if_missing: true"
        )
    dialect.execute(conn, dialect.drop_table_sql(loaded)).close()
    like = dialect.create_like_sql(target, loaded) if exists else None
    if exists:
        check_compatible(dialect, conn, target, schema, spec.keys)
    dialect.execute(conn, like or _create_sql(dialect, loaded, spec, schema)).close()
    try:
        _ddl_checkpoint(dialect, conn)
        inserted = _insert(dialect, conn, loaded, _batches(manifest, logger, f"load {target}"), rejects)
        if before_commit:
            before_commit()  # before the swap: where DDL is not transactional, the swap is the commit
        _ddl_checkpoint(dialect, conn)
        for statement in dialect.swap_tables_sql(target, loaded, exists):
            dialect.execute(conn, statement).close()
        conn.commit()
    except BaseException:
        conn.rollback()
        if not dialect.capabilities.transactional_ddl:
            dialect.execute(conn, dialect.drop_table_sql(loaded)).close()
            conn.commit()
        raise
    quarantined = rejects.count if rejects else 0
    return LoadResult("replace", manifest.rows, inserted, created_table=not exists, quarantined=quarantined)
