"""``append`` loads: the append ledger, one row per loaded range written in the load's own transaction, so a
range loaded before is skipped (and a shorter earlier load of the same start is continued), never doubled.
A partition of a partitioned read labels its range apart from its siblings (``#p2of8``)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.core.watermark import ExtractRange, boundary_label, decode_value, to_source_naive
from airflow_provider_sync.errors import WatermarkError
from airflow_provider_sync.staging.manifest import Manifest

from .load_parts import LoadResult, ddl_checkpoint, insert_rows, staged_batches
from .quarantine import LoadRejects
from .specs import LoadSpec

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.dialects.base import Dialect


def append_rows(
    dialect: Dialect,
    conn: Any,
    spec: LoadSpec,
    manifest: Manifest,
    logger: logging.Logger,
    before_commit: Callable[[], None] | None,
    rejects: LoadRejects | None,
    *,
    created: bool,
) -> LoadResult:
    """Insert the manifest's rows and its ledger row in one transaction, unless the ledger shows the range
    was loaded already."""
    range_start, range_end = _ledger_labels(manifest)
    if ensure_ledger_table(dialect, conn, spec):
        ddl_checkpoint(dialect, conn)
    batches: Any = staged_batches(manifest, logger, f"load {spec.target}")
    existing = _ledger_ends(dialect, conn, spec, manifest, range_start)
    skipped = LoadResult(
        "append",
        manifest.rows,
        ledger_skipped=True,
        created_table=created,
        range_start=range_start,
        range_end=range_end,
    )
    if range_end in existing:
        logger.warning(
            "load %s: range %s .. %s was already loaded (run %s); skipping it",
            spec.target,
            range_start,
            range_end,
            existing[range_end],
        )
        conn.rollback()
        return skipped
    if existing and manifest.rows:
        # A run from the same start committed a shorter range; load only the rows after its end.
        batches = _after_loaded(batches, manifest, max(existing, key=_label_order))
    try:
        _insert_ledger_row(dialect, conn, spec, manifest, range_start, range_end)
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
        return skipped
    inserted = insert_rows(dialect, conn, spec.target, batches, rejects)
    if before_commit:
        before_commit()
    conn.commit()
    quarantined = rejects.count if rejects else 0
    return replace(skipped, ledger_skipped=False, inserted=inserted, quarantined=quarantined)


def _insert_ledger_row(
    dialect: Dialect, conn: Any, spec: LoadSpec, manifest: Manifest, range_start: str, range_end: str
) -> None:
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    values = [spec.pipeline, manifest.table, range_start, range_end, manifest.run_id, manifest.rows, now]
    dialect.execute(conn, dialect.ledger_insert_query(spec.ledger, values)).close()


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


def ensure_ledger_table(dialect: Dialect, conn: Any, spec: LoadSpec) -> bool:
    """Create the append ledger next to the target when missing; True when this call created it."""
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
