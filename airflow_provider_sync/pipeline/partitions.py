"""Partitioned reads: the plan that cuts a first (or ``full``) read into key slices, and the one manifest the
watermark commit and the audit see once every partition has loaded.

The plan reads the high-water mark once, then the partition column's minimum and maximum below it, in one
snapshot. Each partition then reads ``cursor <= that mark`` within its slice, so all of them stop at the
same place, wherever and whenever each one runs; together they read what one unpartitioned extract would.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from airflow_provider_sync.core.partitions import UnsplittableColumn, key_slices, quantile_points, slices_at
from airflow_provider_sync.core.watermark import ExtractRange, decode_value
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.types import KeysetBounds
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.staging.manifest import Manifest

from .connections import driver_errors, open_connection, source_columns
from .extract import cursor_from_source, keyset_bounds, plan_range
from .specs import ExtractSpec

log = logging.getLogger(__name__)


def plan_partitions(
    spec: ExtractSpec,
    column: str,
    count: int,
    *,
    split: str = "equal_width",
    logger: logging.Logger | None = None,
) -> list[ExtractRange]:
    """The ranges of a partitioned first read (``count`` or fewer slices of ``column``, of equal width or
    cut at its quantiles, see ``split``), all bounded by one high-water mark; one unpartitioned range when
    the source has no row to read."""
    logger = logger or log
    dialect = get_dialect(spec.connection.conn_type)
    range_ = plan_range(spec, None)
    with driver_errors(dialect):
        conn = open_connection(dialect, spec)
        try:
            dialect.begin_snapshot(conn)
            source = spec.source
            by_name = {c.name: c for c in source_columns(dialect, conn, source)}
            if column not in by_name:
                raise TerminalError(
                    f"source.partitions.column {column!r} is not a column of {spec.label}; "
                    f"available: {', '.join(by_name)}"
                )
            bounds = KeysetBounds()
            if spec.strategy != "full":
                assert spec.cursor_column is not None
                cursor = by_name[spec.cursor_column]
                render = dialect.cursor_bound_renderer(conn, source, cursor)
                upper = keyset_bounds(range_, cursor, spec, render=render)
                hwm = dialect.scalar(conn, dialect.high_water_mark_query(source, spec.cursor_column, upper))
                if hwm is None:
                    logger.info("%s has no row to read: one partition", spec.label)
                    return [range_]
                bounds = keyset_bounds(range_, cursor, spec, upto=hwm, render=render)
                range_ = replace(range_, end=cursor_from_source(hwm, cursor, spec))
            low, high, starts = _column_spread(dialect, conn, spec, column, bounds, count, split)
        finally:
            try:
                conn.rollback()
            finally:
                conn.close()
    slices = _slices(spec, column, count, split, (low, high, starts))
    logger.info(
        "%s: %d partition(s) of %s (%s) between %s and %s, up to %s %s",
        spec.label,
        len(slices),
        column,
        split.replace("_", " "),
        low,
        high,
        spec.cursor_column or "the end",
        range_.end if range_.end is not None else "",
    )
    return [replace(range_, partition=key_slice) for key_slice in slices]


def _slices(
    spec: ExtractSpec, column: str, count: int, split: str, spread: tuple[Any, Any, list[Any]]
) -> list[Any]:
    """The key slices cut from the column's ``spread`` (minimum, maximum, quantile starts)."""
    low, high, starts = spread
    try:
        if split == "quantiles":
            return slices_at(column, quantile_points(starts))
        return key_slices(column, low, high, count)
    except UnsplittableColumn as error:
        raise TerminalError(
            f"source.partitions.column {column!r} of {spec.label} holds {error}, which cannot be cut into "
            "ranges; partition by a numeric, date or timestamp column (such as an integer primary key)"
        ) from None


def _column_spread(
    dialect: Any, conn: Any, spec: ExtractSpec, column: str, bounds: KeysetBounds, count: int, split: str
) -> tuple[Any, Any, list[Any]]:
    """The column's minimum and maximum inside ``bounds`` and, to cut at quantiles, each quantile's
    smallest value (empty otherwise)."""
    source = spec.source
    result = dialect.execute(conn, dialect.column_range_query(source, column, spec.cursor_column, bounds))
    try:
        low, high = result.fetchone()
    finally:
        result.close()
    if split != "quantiles" or low is None:
        return low, high, []
    query = dialect.column_quantiles_query(source, column, spec.cursor_column, bounds, count)
    result = dialect.execute(conn, query)
    try:
        starts = [row[0] for row in result.fetchall()]
    finally:
        result.close()
    return low, high, starts


def merge_partition_manifests(values: list[dict[str, Any]]) -> Manifest:
    """One manifest for the loads of every partition of a run: rows and counts summed, the last
    ``(cursor, key)`` the greatest any partition reached, each step's history record combined."""
    manifests = [Manifest.from_json(value) for value in values]
    if len(manifests) == 1:
        return manifests[0]
    first = manifests[0]
    lasts = [m.last for m in manifests if m.last]
    last = max(lasts, key=_boundary_order) if lasts else None
    counters: dict[str, int] = {}
    for manifest in manifests:
        for name, value in (manifest.counters or {}).items():
            counters[name] = _combined(name, counters.get(name), value)
    return replace(
        first,
        files=[file for m in manifests for file in m.files],
        parts=[part for m in manifests for part in m.parts],
        rows=sum(m.rows for m in manifests),
        range=replace(ExtractRange.from_json(first.range or {}), partition=None).to_json(),
        last=last,
        counters=counters,
        history=_merged_history(manifests),
    )


def _boundary_order(last: dict[str, Any]) -> tuple[Any, ...]:
    return (decode_value(last["cursor"]), *(decode_value(v) for v in last.get("key", [])))


#: Counts that every partition reports for the whole source, not for its slice.
_WHOLE_SOURCE_COUNTS = frozenset({"null_cursor_rows"})
#: Times that partitions spend side by side: the run waited for the longest, not for their sum.
_PARALLEL_TIMES = frozenset({"seconds"})


def _combined(name: str, earlier: Any, value: Any) -> Any:
    if earlier is None:
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not isinstance(earlier, (int, float))
    ):
        if isinstance(value, list) and isinstance(earlier, list):
            return sorted({*map(str, earlier), *map(str, value)})
        if isinstance(value, dict) and isinstance(earlier, dict):
            return {key: _combined(key, earlier.get(key), item) for key, item in {**earlier, **value}.items()}
        return earlier
    if name in _WHOLE_SOURCE_COUNTS:
        return max(earlier, value)
    if name in _PARALLEL_TIMES:
        return max(earlier, value)
    return earlier + value


def _merged_history(manifests: list[Manifest]) -> list[Any]:
    """Each step's record over all partitions (every partition ran the same steps, in the same order)."""
    from airflow_provider_sync.staging.manifest import StepRecord

    merged: list[StepRecord] = []
    for position, record in enumerate(manifests[0].history):
        records = [m.history[position] for m in manifests if len(m.history) > position]
        rules: dict[str, int] = {}
        details: dict[str, Any] = {}
        for one in records:
            for rule, count in (one.rejected_by_rule or {}).items():
                rules[rule] = rules.get(rule, 0) + count
            for name, value in (one.details or {}).items():
                details[name] = _combined(name, details.get(name), value)
        merged.append(
            replace(
                record,
                rows_in=sum(one.rows_in for one in records),
                rows_out=sum(one.rows_out for one in records),
                rejected_by_rule=rules,
                details=details,
            )
        )
    return merged
