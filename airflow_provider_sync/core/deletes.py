"""Rows a source marks as deleted: split a batch into the rows to load and the keys to delete."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_sync.errors import IncompatibleSchemaError


def flagged_mask(batch: pa.RecordBatch, column: str) -> pa.Array:
    """True where ``column`` marks the row deleted: true for a boolean column, non-zero for an integer one
    (MySQL's ``BOOLEAN`` is ``tinyint(1)``), not null for any other (``deleted_at``)."""
    if column not in batch.schema.names:
        raise IncompatibleSchemaError(
            f"deletes.soft_delete_column {column!r} is not among the staged columns "
            f"({', '.join(batch.schema.names)}); read it from the source (source.columns) and keep it "
            "through schema_map"
        )
    values = batch.column(column)
    if pa.types.is_boolean(values.type):
        return pc.fill_null(values, False)
    if pa.types.is_integer(values.type):
        return pc.fill_null(pc.not_equal(values, 0), False)
    return pc.is_valid(values)


def split_flagged(
    batch: pa.RecordBatch, column: str, keys: Sequence[str]
) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """``(rows to load, keys of rows to delete)`` of one batch."""
    flagged = flagged_mask(batch, column)
    kept = batch.filter(pc.invert(flagged))
    deleted = batch.filter(flagged).select(list(keys))
    return kept, deleted
