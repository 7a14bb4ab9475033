"""Incremental extraction: one consistent snapshot, the high-water mark, keyset-ordered rows to staging."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.core.watermark import (
    ExtractRange,
    Watermark,
    compute_range,
    decode_value,
    encode_value,
    next_watermark,
    normalize_cursor,
    to_source_naive,
    watermark_ahead,
)
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.types import Column, KeysetBounds
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.staging.manifest import Manifest, StepRecord, schema_to_text

from .connections import driver_errors, open_connection, source_columns
from .progress import ProgressReporter
from .specs import ExtractSpec

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.dialects.base import Dialect

log = logging.getLogger(__name__)

# Shared by every module that reads or writes a database; long imported from here.
__all__ = ["driver_errors", "extract_to_staging", "manifest_watermark", "open_connection", "source_columns"]


def _select_columns(spec: ExtractSpec, available: list[Column], keys: list[str]) -> list[Column]:
    """The configured columns, plus the cursor and key columns when left out: the watermark and the
    append ledger need them in the staged data."""
    by_name = {c.name: c for c in available}
    wanted = list(spec.columns) or [c.name for c in available]
    wanted += [
        c
        for c in dict.fromkeys([*([spec.cursor_column] if spec.cursor_column else []), *keys])
        if c not in wanted
    ]
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise TerminalError(
            f"source {spec.label} has no column(s) {', '.join(missing)}; available: {', '.join(by_name)}"
        )
    return [by_name[name] for name in wanted]


def _is_naive_timestamp(column: Column) -> bool:
    """Naive timestamp columns, and text columns holding timestamps (SQLite stores them as text): both
    compare as wall-clock text/values in the source time zone, so bounds must be bound the same way."""
    import pyarrow as pa

    kind = column.arrow_type
    return (pa.types.is_timestamp(kind) and kind.tz is None) or pa.types.is_string(kind)


def _to_source(value: Any, column: Column, spec: ExtractSpec) -> Any:
    """A bound value as the source column compares it (naive wall time for naive timestamp columns)."""
    if isinstance(value, dt.datetime) and _is_naive_timestamp(column):
        return to_source_naive(value, spec.source_timezone)
    return value


def cursor_from_source(value: Any, column: Column, spec: ExtractSpec) -> Any:
    """A cursor value read from the source, normalised for the watermark (UTC for timestamps)."""
    if spec.strategy == "timestamp" and value is not None:
        return normalize_cursor(value, "timestamp", spec.source_timezone)
    return value


def keyset_bounds(
    range_: ExtractRange, column: Column, spec: ExtractSpec, upto: Any = None, render: Any = None
) -> KeysetBounds:
    """The keyset bounds of ``range_``; ``render`` (from the dialect) spells them as the column stores
    values. ``upto`` is the high-water mark as read from the source, already in that spelling."""

    def bound(value: Any) -> Any:
        value = _to_source(value, column, spec)
        return render(value) if render is not None and value is not None else value

    return KeysetBounds(
        after_cursor=bound(range_.start),
        after_keys=range_.start_key,
        after_inclusive=range_.start_inclusive,
        upto_cursor=bound(range_.end) if upto is None else upto,
        before_cursor=bound(range_.end_exclusive),
        key_slice=range_.partition,
    )


def plan_range(
    spec: ExtractSpec, lower: Watermark | ExtractRange | None, interval: tuple[Any, Any] | None = None
) -> ExtractRange:
    """The range to extract from a stored watermark (or an explicit range, or a data interval)."""
    if isinstance(lower, ExtractRange):
        return lower
    return compute_range(
        spec.strategy,
        lower,
        lag=spec.lag,
        initial_value=spec.initial_value,
        end_value=spec.end_value,
        interval=interval,
        source_timezone=spec.source_timezone,
    )


def extract_to_staging(
    spec: ExtractSpec,
    lower: Watermark | ExtractRange | None,
    staging_dir: Any,
    *,
    dag_id: str,
    run_id: str,
    table: str | None = None,
    interval: tuple[Any, Any] | None = None,
    step: str = "extract",
    logger: logging.Logger | None = None,
    on_batch: Callable[[pa.RecordBatch], None] | None = None,
    on_schema: Callable[[pa.Schema], None] | None = None,
) -> Manifest:
    """Extract the rows after ``lower`` (a stored :class:`Watermark`, an explicit :class:`ExtractRange`,
    or None for a first run) - or those in ``interval`` (``[start, end)``, for backfills) - into Arrow files
    under ``staging_dir``, and return the manifest describing them.

    Everything is read inside one snapshot: the high-water mark is taken first, then rows with
    ``(cursor, key) > lower`` and ``cursor <= hwm`` are streamed in ``(cursor, key)`` order, so rows
    committed meanwhile wait for the next run. ``on_schema`` is called with the staged schema before the
    first row is read, ``on_batch`` after each staged batch (a fused table streams them to its load).
    """
    logger = logger or log
    dialect = get_dialect(spec.connection.conn_type)
    range_ = plan_range(spec, lower, interval)
    with driver_errors(dialect):
        return _extract(
            spec, dialect, range_, staging_dir, dag_id, run_id, table, step, logger, (on_schema, on_batch)
        )


@dataclass
class _Read:
    """One extraction in progress: its snapshot connection, the columns it stages and where they go."""

    spec: ExtractSpec
    dialect: Dialect
    conn: Any
    columns: list[Column]
    keys: list[str]
    writer: Any
    progress: ProgressReporter
    on_batch: Callable[[pa.RecordBatch], None] | None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def stream(self, query: Any, track: list[str] | None = None) -> list[Any] | None:
        return _stream(self.dialect, self.conn, query, self.columns, self.spec, self.writer, self.progress,
                       self.on_batch, track=track)  # fmt: skip


def _extract(
    spec: ExtractSpec,
    dialect: Dialect,
    range_: ExtractRange,
    staging_dir: Any,
    dag_id: str,
    run_id: str,
    table: str | None,
    step: str,
    logger: logging.Logger,
    callbacks: tuple[Callable[[pa.Schema], None] | None, Callable[[pa.RecordBatch], None] | None],
) -> Manifest:
    from airflow_provider_sync.dialects._arrow import schema_of
    from airflow_provider_sync.staging.files import StageWriter

    conn = open_connection(dialect, spec)
    try:
        dialect.begin_snapshot(conn)
        source = spec.source
        available = source_columns(dialect, conn, source)
        keys = list(spec.key_columns)
        if not keys and not isinstance(source, str):
            keys = dialect.get_primary_key(conn, source)
        # The declared types ride in the staged schema, so the target can be created faithfully.
        columns = [
            replace(c, declared=dialect.declared_type(c.db_type))
            for c in _select_columns(spec, available, keys)
        ]
        schema = schema_of(columns)
        on_schema, on_batch = callbacks
        if on_schema is not None:
            on_schema(schema)
        progress = ProgressReporter(logger, f"extract {spec.label}")
        read = _Read(spec, dialect, conn, columns, keys, StageWriter(staging_dir, schema), progress, on_batch)
        with read.writer:
            if spec.strategy == "full":
                hwm, last, counters = _read_all(read, range_)
            else:
                hwm, last, counters = _read_cursor_range(read, range_, available, logger)
        progress.finish()
    finally:
        try:
            conn.rollback()
        finally:
            conn.close()
    counters["rows"] = read.writer.rows
    return _manifest(read, range_, hwm, last, counters, (dag_id, run_id, table or spec.label, step))


def _manifest(
    read: _Read,
    range_: ExtractRange,
    hwm: Any,
    last: dict[str, Any] | None,
    counters: dict[str, int],
    run: tuple[str, str, str, str],
) -> Manifest:
    """The manifest of a finished read: its files, range, high-water mark and last boundary."""
    spec, writer = read.spec, read.writer
    dag_id, run_id, table, step = run
    details = {
        "null_cursor_rows": counters.get("null_cursor_rows", 0),
        "null_policy": spec.null_policy,
        "seconds": round(read.progress.elapsed, 3),  # reading time: the step's rows/s
        **watermark_ahead(range_, hwm),
    }
    return Manifest(
        dag_id=dag_id,
        run_id=run_id,
        table=table,
        step=step,
        files=writer.files,
        parts=[part.to_json() for part in writer.parts],
        rows=writer.rows,
        schema=schema_to_text(writer.schema),
        range=range_.to_json(),
        high_water_mark=encode_value(hwm),
        last=last,
        strategy=spec.strategy,
        cursor_column=spec.cursor_column,
        key_columns=read.keys,
        source_timezone=spec.source_timezone,
        counters=counters,
        history=[StepRecord(step, writer.rows, writer.rows, details=details)],
    )


def _reads_whole_table(range_: ExtractRange) -> bool:
    """A table-size estimate only means something when the whole table is read."""
    bounded = range_.start, range_.end, range_.end_exclusive, range_.partition
    return all(bound is None for bound in bounded)


def _read_all(read: _Read, range_: ExtractRange) -> tuple[Any, None, dict[str, int]]:
    """Strategy ``full``: every row (of the partition), ordered by key; no high-water mark."""
    from .probe import estimate_rows_read  # probe builds on this module

    dialect, conn, source = read.dialect, read.conn, read.spec.source
    query = dialect.full_query(source, read.names, read.keys, range_.partition)
    read.progress.set_total(
        estimate_rows_read(dialect, conn, source, query, whole_table=_reads_whole_table(range_))
    )
    read.stream(query)
    return None, None, {}


def _read_cursor_range(
    read: _Read, range_: ExtractRange, available: list[Column], logger: logging.Logger
) -> tuple[Any, dict[str, Any] | None, dict[str, int]]:
    """The rows of ``range_`` up to the high-water mark taken now, in ``(cursor, key)`` order, then the
    NULL-cursor rows when the policy includes them; returns the mark, the last row's boundary, counters."""
    from .probe import estimate_rows_read  # probe builds on this module

    spec, dialect, conn, source = read.spec, read.dialect, read.conn, read.spec.source
    assert spec.cursor_column is not None
    cursor_column = {c.name: c for c in available}[spec.cursor_column]
    render = dialect.cursor_bound_renderer(conn, source, cursor_column)
    upper = keyset_bounds(range_, cursor_column, spec, render=render)
    hwm = dialect.scalar(conn, dialect.high_water_mark_query(source, spec.cursor_column, upper))
    counters = {"null_cursor_rows": _null_cursor_rows(dialect, conn, spec, source, logger)}
    last: dict[str, Any] | None = None
    if hwm is not None:
        bounds = keyset_bounds(range_, cursor_column, spec, upto=hwm, render=render)
        query = dialect.keyset_query(source, read.names, spec.cursor_column, read.keys, bounds)
        estimate = estimate_rows_read(dialect, conn, source, query, whole_table=_reads_whole_table(range_))
        read.progress.set_total(estimate and estimate + _included_nulls(spec, counters, range_))
        last_row = read.stream(query, track=[spec.cursor_column, *read.keys])
        if last_row is not None:
            last = {
                "cursor": encode_value(cursor_from_source(last_row[0], cursor_column, spec)),
                "key": [encode_value(v) for v in last_row[1:]],
            }
        hwm = cursor_from_source(hwm, cursor_column, spec)
    if _included_nulls(spec, counters, range_):
        read.stream(dialect.null_cursor_query(source, read.names, spec.cursor_column, read.keys))
    return hwm, last, counters


def _included_nulls(spec: ExtractSpec, counters: dict[str, int], range_: ExtractRange) -> int:
    """Rows with a NULL cursor this read adds after the range (``include`` policy, not for intervals; of a
    partitioned read, the first partition takes them)."""
    if spec.null_policy != "include" or range_.mode == "interval":
        return 0
    if range_.partition is not None and range_.partition.index != 0:
        return 0
    return counters.get("null_cursor_rows", 0)


def _null_cursor_rows(
    dialect: Dialect, conn: Any, spec: ExtractSpec, source: Any, logger: logging.Logger
) -> int:
    assert spec.cursor_column is not None
    count = int(
        dialect.scalar(conn, dialect.count_query(source, f"{dialect.quote(spec.cursor_column)} IS NULL")) or 0
    )
    if count and spec.null_policy == "fail":
        raise TerminalError(
            f"{count} row(s) of {spec.label} have a NULL {spec.cursor_column} and null_policy is fail; "
            "fix the source rows or set null_policy to exclude or include"
        )
    if count and spec.null_policy == "exclude":
        logger.warning(
            "%s: %d row(s) with a NULL %s were skipped (null_policy exclude)",
            spec.label,
            count,
            spec.cursor_column,
        )
    return count


def _stream(
    dialect: Dialect,
    conn: Any,
    query: Any,
    columns: list[Column],
    spec: ExtractSpec,
    writer: Any,
    progress: ProgressReporter,
    on_batch: Callable[[pa.RecordBatch], None] | None,
    track: list[str] | None = None,
) -> list[Any] | None:
    """Stage every batch of ``query``; return the tracked columns' values of the last row."""
    last: list[Any] | None = None
    for batch in dialect.read_batches(conn, query, columns, spec.batch_size):
        writer.write(batch)
        progress.add(batch.num_rows)
        if track and batch.num_rows:
            last = [_last_value(batch.column(batch.schema.get_field_index(name))) for name in track]
        if on_batch is not None:
            on_batch(batch)
    return last


def _last_value(array: pa.Array) -> Any:
    """The last value of a column as a Python object. A zone-aware timestamp is read as its UTC wall time
    and given ``timezone.utc``: pyarrow's own conversion of zone-aware values imports pandas (about
    100 MiB and seconds per task) just to build the tzinfo."""
    import pyarrow as pa

    kind = array.type
    if not (pa.types.is_timestamp(kind) and kind.tz is not None):
        return array[-1].as_py()
    wall = array.slice(len(array) - 1).cast(pa.timestamp(kind.unit))[0].as_py()
    return None if wall is None else wall.replace(tzinfo=dt.timezone.utc)


def manifest_watermark(
    manifest: Manifest, previous: Watermark | None, run_id: str | None = None
) -> Watermark | None:
    """The watermark to commit once the manifest's rows are loaded (None for ``full`` and backfills,
    which never move the live watermark)."""
    range_mode = (manifest.range or {}).get("mode")
    if manifest.strategy == "full" or range_mode == "interval":
        return previous
    if not manifest.last:
        return previous
    return next_watermark(
        previous,
        decode_value(manifest.last["cursor"]),
        tuple(decode_value(v) for v in manifest.last.get("key", [])),
        run_id=run_id or manifest.run_id,
        rows=manifest.rows,
    )
