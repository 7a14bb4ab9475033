"""Compacting a change batch: the last change per key, in log order (pure, over Arrow).

A batch of changes (see :mod:`airflow_provider_sync.cdc.changes` for its shape) may touch one key many
times; only the last change decides the key's final state, so applying that one is enough. One subtlety:
an update of PostgreSQL may leave a TOASTed column out (it did not change). Its value is then null in the
batch and its name is listed in the row's ``_sync_unchanged`` list. When an earlier change of the same key
in the batch carried that column, the compacted row takes the value from there (the newest such value), so
the apply only has to keep the target's value for columns no change in the batch carried.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

OP = "_sync_op"
POSITION = "_sync_position"
SEQUENCE = "_sync_seq"
UNCHANGED = "_sync_unchanged"


def after_position(batch: pa.RecordBatch | pa.Table, position: str | None) -> pa.RecordBatch | pa.Table:
    """The changes whose ``_sync_position`` sorts strictly after ``position`` (all when None)."""
    if position is None or batch.num_rows == 0:
        return batch
    return batch.filter(pc.greater(batch.column(POSITION), pa.scalar(position, pa.string())))


def compact(batch: pa.RecordBatch | pa.Table, keys: Sequence[str]) -> pa.Table:
    """One row per key: its change with the greatest ``_sync_seq``, rows ordered by ``_sync_seq``.

    Columns a last update left unchanged (``_sync_unchanged``) are filled from the newest earlier change
    of the key that carried them (and dropped from its list); a delete or insert in between ends the look
    back (an insert carries every column; after a delete nothing earlier applies)."""
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    if not keys:
        raise ValueError("compacting changes needs the key columns")
    if table.num_rows == 0:
        return table
    table = table.sort_by(SEQUENCE)
    last = table.group_by(list(keys), use_threads=False).aggregate([(SEQUENCE, "max")])
    newest = pc.is_in(table.column(SEQUENCE), value_set=last.column(f"{SEQUENCE}_max"))
    compacted = table.filter(newest)
    if UNCHANGED in table.column_names:
        compacted = _fill_unchanged(table, compacted, keys)
    return compacted


def _has_unchanged(table: pa.Table) -> pa.Array:
    lengths = pc.fill_null(pc.list_value_length(table.column(UNCHANGED)), 0)
    return pc.greater(lengths, 0)


def _fill_unchanged(history: pa.Table, compacted: pa.Table, keys: Sequence[str]) -> pa.Table:
    """Carry values forward into the compacted rows that name unchanged columns."""
    pending = _has_unchanged(compacted)
    if not pc.any(pending).as_py():
        return compacted
    rows = compacted.to_pylist()
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in history.to_pylist():  # in _sync_seq order
        by_key.setdefault(tuple(row[k] for k in keys), []).append(row)
    for row in rows:
        if row[UNCHANGED]:
            _carry_forward(row, by_key[tuple(row[k] for k in keys)])
    return pa.Table.from_pylist(rows, schema=compacted.schema)


def _carry_forward(row: dict[str, Any], changes: list[dict[str, Any]]) -> None:
    missing = list(row[UNCHANGED])
    for earlier in reversed(changes[:-1]):  # changes[-1] is the row itself
        if earlier[OP] == "delete":
            break
        carried = set(earlier[UNCHANGED] or ())
        for name in list(missing):
            if name not in carried:
                row[name] = earlier[name]
                missing.remove(name)
        if not missing or earlier[OP] == "insert":
            break
    row[UNCHANGED] = missing


def split_by_op(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """The compacted rows to delete and those to upsert (inserts and updates)."""
    is_delete = pc.equal(table.column(OP), pa.scalar("delete"))
    return table.filter(is_delete), table.filter(pc.invert(is_delete))


def unchanged_groups(table: pa.Table) -> list[tuple[tuple[str, ...], pa.Table]]:
    """The rows to upsert grouped by the columns they must leave alone: ``()`` for full rows first, then
    one group per distinct set of unchanged columns."""
    if UNCHANGED not in table.column_names or table.num_rows == 0:
        return [((), table)] if table.num_rows else []
    spelled = [tuple(sorted(v or ())) for v in table.column(UNCHANGED).to_pylist()]
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, names in enumerate(spelled):
        groups.setdefault(names, []).append(index)
    ordered = sorted(groups.items(), key=lambda item: (len(item[0]), item[0]))
    return [(names, table.take(pa.array(indices, pa.int64()))) for names, indices in ordered]
