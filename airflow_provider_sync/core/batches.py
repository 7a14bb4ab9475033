"""Pure helpers over Arrow record batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


def _scalar(value: Any, kind: pa.DataType) -> pa.Scalar:
    return pa.scalar(value, type=kind)


def rows_after(batch: pa.RecordBatch, columns: Sequence[str], boundary: Sequence[Any]) -> pa.RecordBatch:
    """The rows of ``batch`` whose ``(columns...)`` tuple sorts strictly after ``boundary``
    (lexicographic, like SQL ``(a, b) > (x, y)``); rows with a NULL in those columns are kept out."""
    if len(columns) != len(boundary):
        raise ValueError(f"{len(columns)} column(s) but {len(boundary)} boundary value(s)")
    if batch.num_rows == 0 or not columns:
        return batch
    mask: pa.Array | None = None
    equal_so_far: pa.Array | None = None
    for name, value in zip(columns, boundary, strict=True):
        column = batch.column(batch.schema.get_field_index(name))
        bound = _scalar(value, column.type)
        greater = pc.greater(column, bound)
        term = greater if equal_so_far is None else pc.and_kleene(equal_so_far, greater)
        mask = term if mask is None else pc.or_kleene(mask, term)
        equal = pc.equal(column, bound)
        equal_so_far = equal if equal_so_far is None else pc.and_kleene(equal_so_far, equal)
    assert mask is not None
    return batch.filter(pc.fill_null(mask, False))
