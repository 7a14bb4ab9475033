"""Rows a step took out of the stream, with why, ready for the quarantine table."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class RejectedRows:
    """Rejected rows (input schema) and, per row, the first rule broken, its column and every reason.

    ``rule``, ``column`` and ``reason`` are string arrays parallel to ``rows``; ``column`` is NULL for
    row-level rules. Reasons describe the rule, never the value.
    """

    rows: pa.RecordBatch
    rule: pa.Array
    column: pa.Array
    reason: pa.Array

    @property
    def num_rows(self) -> int:
        return int(self.rows.num_rows)

    @classmethod
    def empty(cls, schema: pa.Schema) -> RejectedRows:
        no_text = pa.array([], pa.string())
        return cls(pa.RecordBatch.from_pylist([], schema=schema), no_text, no_text, no_text)

    @classmethod
    def build(
        cls, rows: pa.RecordBatch, rule: list[str], column: list[str | None], reason: list[str]
    ) -> RejectedRows:
        return cls(
            rows, pa.array(rule, pa.string()), pa.array(column, pa.string()), pa.array(reason, pa.string())
        )

    def concat(self, other: RejectedRows) -> RejectedRows:
        """Both sets of rows; ``other`` must have the same schema."""
        if other.num_rows == 0:
            return self
        if self.num_rows == 0:
            return other
        rows = pa.Table.from_batches([self.rows, other.rows]).combine_chunks().to_batches()[0]
        return RejectedRows(
            rows,
            pa.concat_arrays([self.rule, other.rule]),
            pa.concat_arrays([self.column, other.column]),
            pa.concat_arrays([self.reason, other.reason]),
        )
