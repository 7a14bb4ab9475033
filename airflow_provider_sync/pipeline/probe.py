"""Cheap checks against a source that do not extract anything: new rows (the new-rows sensor), and how many
rows a read will return (the extract's progress percent and ETA)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.core.watermark import ExtractRange, Watermark
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.types import Query, TableRef

from .connections import driver_errors, open_connection, source_columns
from .extract import keyset_bounds, plan_range
from .specs import ExtractSpec

if TYPE_CHECKING:
    from airflow_provider_sync.dialects.base import Dialect

log = logging.getLogger(__name__)


def estimate_rows_read(
    dialect: Dialect, conn: Any, source: TableRef | str, query: Query, *, whole_table: bool
) -> int | None:
    """How many rows ``query`` will return, from database statistics only (nothing is scanned), or None.

    A read of the whole table takes the table's row statistics; a range read (or a query source) takes the
    planner's estimate of the query itself, which databases give only when an index bounds the range. An
    estimate that cannot be read (an unusual plan) costs the percent, never the run; the statements
    themselves fail only where the read that follows would fail too.
    """
    try:
        if whole_table and isinstance(source, TableRef):
            estimate = dialect.estimate_rows(conn, source)
            if estimate is not None:
                return estimate
        return dialect.estimate_query_rows(conn, query)
    except Exception as exc:  # an estimate is optional: the extract goes on without one
        log.info("No row estimate for the progress lines (%s)", type(exc).__name__)
        return None


def new_rows_range(spec: ExtractSpec, lower: Watermark | None) -> ExtractRange:
    """The part of the next extract's range that holds rows not read yet.

    A ``lag`` widens the extract backwards to ``cursor >= watermark - lag``: it re-reads rows already
    loaded, in case older ones committed late. Those rows are always there, so they are no sign of new
    work; the rows the extract reads for the first time are the ones past the watermark's
    ``(cursor, key)`` within ``end_value`` - the range the extract plans without the lag.
    """
    return plan_range(replace(spec, lag=None), lower)


def has_rows_past(spec: ExtractSpec, lower: Watermark | None) -> bool:
    """True when the next extract would read at least one row it has not read before: a row after
    ``lower`` (within ``end_value``), whatever the lag.

    Runs one keyset query limited to a single row, so it costs an index probe, not a scan. The ``full``
    strategy has no watermark to compare with: every poll finds work.
    """
    if spec.strategy == "full" or spec.cursor_column is None:
        return True
    dialect = get_dialect(spec.connection.conn_type)
    range_ = new_rows_range(spec, lower)
    with driver_errors(dialect):
        conn: Any = open_connection(dialect, spec)
        try:
            source = spec.source
            by_name = {column.name: column for column in source_columns(dialect, conn, source)}
            if spec.cursor_column not in by_name:
                from airflow_provider_sync.errors import TerminalError

                raise TerminalError(f"cursor column {spec.cursor_column!r} is not in {spec.label}")
            keys = list(spec.key_columns) or (
                [] if isinstance(source, str) else dialect.get_primary_key(conn, source)
            )
            # Bounds spelled as the extract spells them (SQLite text timestamps compare as text).
            cursor_column = by_name[spec.cursor_column]
            render = dialect.cursor_bound_renderer(conn, source, cursor_column)
            bounds = keyset_bounds(range_, cursor_column, spec, render=render)
            query = dialect.keyset_query(
                source, [spec.cursor_column], spec.cursor_column, keys, bounds, limit=1
            )
            cursor = dialect.execute(conn, query)
            try:
                return cursor.fetchone() is not None
            finally:
                cursor.close()
        finally:
            conn.rollback()
            conn.close()
