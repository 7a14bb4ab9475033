"""Subset walk: the root rows (sampled by keyed hash) and every row reachable along the ``follow`` edges,
read from the sources in one snapshot per connection; only keys and edge values are held.

Split from :mod:`.subset`: the walk decides *which* rows are kept; :mod:`.subset` copies them.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.config.subset import FollowEdge
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.subset_sql import (
    chunks,
    count_where_query,
    select_in_query,
    select_where_query,
)
from airflow_provider_sync.dialects.types import Column, TableRef
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.pipeline.subset_plan import READ_BATCH, Key, SubsetPlan, SubsetTable

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.dialects.base import Dialect
    from airflow_provider_sync.dialects.connection import ConnectionInfo


# ----------------------------------------------------------------------------- reading
class SubsetSource:
    """One source connection in one snapshot, and the columns of its tables."""

    def __init__(self, info: ConnectionInfo) -> None:
        self.dialect: Dialect = get_dialect(info.conn_type)
        self.conn = self.dialect.connect(info)
        self.dialect.begin_snapshot(self.conn)
        self._columns: dict[TableRef, dict[str, Column]] = {}

    def columns(self, table: TableRef) -> dict[str, Column]:
        if table not in self._columns:
            found = self.dialect.get_columns(self.conn, table)
            if not found:
                raise TerminalError(f"source table {table} does not exist or has no columns")
            self._columns[table] = {
                c.name: replace(c, declared=self.dialect.declared_type(c.db_type)) for c in found
            }
        return self._columns[table]

    def pick(self, table: TableRef, names: Sequence[str]) -> list[Column]:
        available = self.columns(table)
        missing = [name for name in names if name not in available]
        if missing:
            raise TerminalError(
                f"source table {table} has no column(s) {', '.join(missing)} that the subset needs; "
                f"available: {', '.join(available)}"
            )
        return [available[name] for name in names]

    def batches(self, query: Any, columns: Sequence[Column]) -> Iterator[pa.RecordBatch]:
        yield from self.dialect.read_batches(self.conn, query, columns, READ_BATCH)

    def rows(self, query: Any, columns: Sequence[Column]) -> Iterator[dict[str, Any]]:
        for batch in self.batches(query, columns):
            yield from batch.to_pylist()

    def close(self) -> None:
        try:
            self.conn.rollback()
        finally:
            self.conn.close()


# ----------------------------------------------------------------------------- walk
class SubsetWalk:
    """The kept rows of every table: key -> the row's edge column values, and which rows were reached
    downwards (their children are kept too)."""

    def __init__(self, plan: SubsetPlan, sources: dict[str, SubsetSource]) -> None:
        self.plan, self.sources = plan, sources
        self.kept: dict[str, dict[Key, dict[str, Any]]] = {name: {} for name in plan.tables}
        self.downward: dict[str, set[Key]] = {name: set() for name in plan.tables}
        self._asked: dict[tuple[str, str, str], set[Any]] = defaultdict(set)
        self.root_matching = 0
        self.root_kept = 0
        self.rounds = 0

    def _walk_columns(self, name: str) -> list[str]:
        table = self.plan.tables[name]
        names = list(table.keys)
        for edge in self.plan.config.edges:
            names += [edge.child_column] if edge.child == name else []
            names += [edge.parent_column] if edge.parent == name else []
        return list(dict.fromkeys(names))

    def _source(self, name: str) -> tuple[SubsetSource, SubsetTable, list[Column]]:
        table = self.plan.tables[name]
        source = self.sources[table.source_conn_id]
        return source, table, source.pick(table.source, self._walk_columns(name))

    def _keep(self, name: str, row: dict[str, Any], downward: bool) -> tuple[bool, bool]:
        """Keep one row; (newly kept, newly reached downwards)."""
        key = tuple(row[k] for k in self.plan.tables[name].keys)
        kept = self.kept[name]
        added = key not in kept
        if added:
            if sum(len(rows) for rows in self.kept.values()) >= self.plan.config.max_keys:
                raise TerminalError(
                    f"the subset of pipeline {self.plan.dag_id!r} holds more than subset.max_keys="
                    f"{self.plan.config.max_keys} rows; narrow subset.where, lower subset.sample or raise "
                    "subset.max_keys (the keys are held in memory)"
                )
            kept[key] = row
        newly_down = downward and key not in self.downward[name]
        if newly_down:
            self.downward[name].add(key)
        return added, newly_down

    def select_root(self) -> set[Key]:
        config = self.plan.config
        source, table, columns = self._source(config.root)
        self.root_matching = int(
            source.dialect.scalar(source.conn, count_where_query(source.dialect, table.source, config.where))
            or 0
        )
        wanted = config.sample_size(self.root_matching)
        rows = source.rows(
            select_where_query(source.dialect, table.source, [c.name for c in columns], config.where), columns
        )
        if wanted < self.root_matching:
            rows = iter(heapq.nsmallest(wanted, rows, key=lambda row: self._rank(row, table.keys)))
        for row in rows:
            self._keep(config.root, row, downward=True)
        self.root_kept = len(self.kept[config.root])
        return set(self.kept[config.root])

    def _rank(self, row: dict[str, Any], keys: Sequence[str]) -> bytes:
        text = f"{self.plan.config.seed}:{[row[k] for k in keys]!r}"
        return hashlib.sha256(text.encode()).digest()

    def _fetch(self, name: str, column: str, direction: str, values: set[Any]) -> Iterator[dict[str, Any]]:
        asked = self._asked[(direction, name, column)]
        fresh = sorted((v for v in values - asked if v is not None), key=repr)
        asked.update(fresh)
        if not fresh:
            return
        source, table, columns = self._source(name)
        names = [c.name for c in columns]
        for part in chunks(fresh):
            yield from source.rows(
                select_in_query(source.dialect, table.source, names, column, part), columns
            )

    def _follow(
        self, edge: FollowEdge, new: dict[str, set[Key]], down: dict[str, set[Key]]
    ) -> tuple[dict[str, set[Key]], dict[str, set[Key]]]:
        grown: dict[str, set[Key]] = defaultdict(set)
        grown_down: dict[str, set[Key]] = defaultdict(set)
        children = self.kept[edge.child]
        wanted = {children[key][edge.child_column] for key in new.get(edge.child, ())}
        for row in self._fetch(edge.parent, edge.parent_column, "up", wanted):
            added, _ = self._keep(edge.parent, row, downward=False)
            if added:
                grown[edge.parent].add(tuple(row[k] for k in self.plan.tables[edge.parent].keys))
        parents = self.kept[edge.parent]
        wanted = {parents[key][edge.parent_column] for key in down.get(edge.parent, ())}
        for row in self._fetch(edge.child, edge.child_column, "down", wanted):
            key = tuple(row[k] for k in self.plan.tables[edge.child].keys)
            added, newly_down = self._keep(edge.child, row, downward=True)
            if added:
                grown[edge.child].add(key)
            if newly_down:
                grown_down[edge.child].add(key)
        return grown, grown_down

    def run(self) -> None:
        """Keep the root rows, then follow every edge both ways until no edge adds a row."""
        root = self.select_root()
        new: dict[str, set[Key]] = {self.plan.config.root: root}
        down: dict[str, set[Key]] = {self.plan.config.root: set(root)}
        while any(new.values()) or any(down.values()):
            self.rounds += 1
            next_new: dict[str, set[Key]] = defaultdict(set)
            next_down: dict[str, set[Key]] = defaultdict(set)
            for edge in self.plan.config.edges:
                grown, grown_down = self._follow(edge, new, down)
                for name, keys in grown.items():
                    next_new[name] |= keys
                for name, keys in grown_down.items():
                    next_down[name] |= keys
            new, down = next_new, next_down


__all__ = ["SubsetSource", "SubsetWalk"]
