"""Extraction SQL: keyset pages, the high-water mark, NULL-cursor rows, full reads (never OFFSET)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._names import SQLNames
from .types import Binder, KeysetBounds, Query, TableRef

if TYPE_CHECKING:
    from airflow_provider_sync.core.partitions import KeySlice


class KeysetSQL(SQLNames):
    """The SELECTs an extraction runs. Dialects override :meth:`limit_sql` / :meth:`source_sql` when their
    syntax differs, and declare ``row_value_comparison`` in their capabilities."""

    def source_sql(self, source: TableRef | str) -> str:
        """The FROM target: a qualified table, or ``(query) sync_src`` for a query source."""
        if isinstance(source, TableRef):
            return self.qualify(source)
        return f"({source}) sync_src"

    def limit_sql(self, sql: str, limit: int) -> str:
        """Append a row limit to a SELECT (``FETCH FIRST`` / ``TOP`` dialects override)."""
        return f"{sql} LIMIT {int(limit)}"

    def keyset_predicate(
        self, cursor_column: str, key_columns: Sequence[str], bounds: KeysetBounds, bind: Binder
    ) -> str:
        """The WHERE condition selecting the rows inside ``bounds`` (see :class:`KeysetBounds`).
        Rows with a NULL cursor never match. Uses a row-value comparison when the database supports it,
        otherwise the equivalent ``c >= :c AND (c > :c OR (c = :c AND (k1 > :k1 OR ...)))`` expansion."""
        cursor = self.quote(cursor_column)
        parts = [f"{cursor} IS NOT NULL"]
        if bounds.after_cursor is not None:
            if bounds.after_keys is not None:
                if len(bounds.after_keys) != len(key_columns):
                    raise ValueError(
                        f"the watermark has {len(bounds.after_keys)} key value(s) but key_columns lists "
                        f"{len(key_columns)}; clear the watermark or fix key_columns"
                    )
                parts.append(
                    self._row_greater(
                        [cursor_column, *key_columns], [bounds.after_cursor, *bounds.after_keys], bind
                    )
                )
            else:
                operator = ">=" if bounds.after_inclusive else ">"
                parts.append(f"{cursor} {operator} {bind(bounds.after_cursor)}")
        if bounds.upto_cursor is not None:
            parts.append(f"{cursor} <= {bind(bounds.upto_cursor)}")
        if bounds.before_cursor is not None:
            parts.append(f"{cursor} < {bind(bounds.before_cursor)}")
        if bounds.key_slice is not None:
            parts.append(self.slice_predicate(bounds.key_slice, bind))
        return " AND ".join(parts)

    def slice_predicate(self, key_slice: KeySlice, bind: Binder) -> str:
        """``(col >= :low AND col < :high)`` for one partition, ``OR col IS NULL`` in the one taking NULLs."""
        column = self.quote(key_slice.column)
        parts = []
        if key_slice.low is not None:
            parts.append(f"{column} >= {bind(key_slice.low)}")
        if key_slice.high is not None:
            parts.append(f"{column} < {bind(key_slice.high)}")
        inside = " AND ".join(parts) or f"{column} IS NOT NULL"
        return f"({inside} OR {column} IS NULL)" if key_slice.nulls else f"({inside})"

    def no_rows_query(self, table: TableRef, within: KeySlice | None = None) -> Query:
        """``SELECT NOT EXISTS (...)``: true while ``table`` holds no row (of the key slice ``within``). A
        load whose rows all lie in the slice, keyed by its column, then has nothing to merge with."""
        bind = Binder(self.capabilities.param_style)
        where = f" WHERE {self.slice_predicate(within, bind)}" if within is not None else ""
        return bind.query(f"SELECT NOT EXISTS (SELECT 1 FROM {self.qualify(table)}{where})")

    def column_range_query(
        self, source: TableRef | str, column: str, cursor_column: str | None, bounds: KeysetBounds
    ) -> Query:
        """``SELECT MIN(column), MAX(column)`` over the rows inside ``bounds`` (all rows without a cursor):
        where a partitioned read cuts its slices."""
        bind = Binder(self.capabilities.param_style)
        where = f" WHERE {self.keyset_predicate(cursor_column, (), bounds, bind)}" if cursor_column else ""
        quoted = self.quote(column)
        return bind.query(f"SELECT MIN({quoted}), MAX({quoted}) FROM {self.source_sql(source)}{where}")

    def column_quantiles_query(
        self, source: TableRef | str, column: str, cursor_column: str | None, bounds: KeysetBounds, count: int
    ) -> Query:
        """The smallest non-NULL value of each of ``count`` quantiles of ``column`` over the rows inside
        ``bounds``, in order (``NTILE`` over the column: the rows are read once, sorted by it), where a
        partitioned read of skewed keys cuts its slices."""
        bind = Binder(self.capabilities.param_style)
        quoted = self.quote(column)
        where = f"{quoted} IS NOT NULL"
        if cursor_column:
            where += f" AND {self.keyset_predicate(cursor_column, (), bounds, bind)}"
        tiles = (
            f"SELECT {quoted}, NTILE({int(count)}) OVER (ORDER BY {quoted}) AS sync_tile "
            f"FROM {self.source_sql(source)} WHERE {where}"
        )
        return bind.query(
            f"SELECT MIN({quoted}) FROM ({tiles}) sync_tiles GROUP BY sync_tile ORDER BY sync_tile"
        )

    def _row_greater(self, columns: Sequence[str], values: Sequence[Any], bind: Binder) -> str:
        quoted = [self.quote(c) for c in columns]
        if len(columns) == 1:
            return f"{quoted[0]} > {bind(values[0])}"
        if self.capabilities.row_value_comparison:
            placeholders = ", ".join(bind(v) for v in values)
            return f"({', '.join(quoted)}) > ({placeholders})"

        # Expanded form; the leading ">=" lets the optimizer use a range scan on the cursor index.
        # Placeholders are bound in textual order, which positional parameter styles rely on.
        def expand(i: int) -> str:
            if i == len(quoted) - 1:
                return f"{quoted[i]} > {bind(values[i])}"
            return (
                f"{quoted[i]} > {bind(values[i])} OR ({quoted[i]} = {bind(values[i])} AND ({expand(i + 1)}))"
            )

        return f"{quoted[0]} >= {bind(values[0])} AND ({expand(0)})"

    def keyset_query(
        self,
        source: TableRef | str,
        columns: Sequence[str],
        cursor_column: str,
        key_columns: Sequence[str],
        bounds: KeysetBounds,
        limit: int | None = None,
    ) -> Query:
        """``SELECT columns FROM source WHERE <keyset predicate> ORDER BY cursor, key...`` (never OFFSET);
        ``limit`` makes it one keyset page."""
        bind = Binder(self.capabilities.param_style)
        order = self.column_list([cursor_column, *key_columns])
        sql = (
            f"SELECT {self.column_list(columns)} FROM {self.source_sql(source)} "
            f"WHERE {self.keyset_predicate(cursor_column, key_columns, bounds, bind)} ORDER BY {order}"
        )
        return bind.query(self.limit_sql(sql, limit) if limit else sql)

    def high_water_mark_query(
        self, source: TableRef | str, cursor_column: str, bounds: KeysetBounds
    ) -> Query:
        """``SELECT MAX(cursor)`` within the end bounds of ``bounds`` (lower bounds are ignored)."""
        bind = Binder(self.capabilities.param_style)
        upper = KeysetBounds(upto_cursor=bounds.upto_cursor, before_cursor=bounds.before_cursor)
        predicate = self.keyset_predicate(cursor_column, (), upper, bind)
        return bind.query(
            f"SELECT MAX({self.quote(cursor_column)}) FROM {self.source_sql(source)} WHERE {predicate}"
        )

    def null_cursor_query(
        self, source: TableRef | str, columns: Sequence[str], cursor_column: str, key_columns: Sequence[str]
    ) -> Query:
        """Rows whose cursor is NULL, ordered by key (used by the ``include`` NULL policy)."""
        order = f" ORDER BY {self.column_list(key_columns)}" if key_columns else ""
        return Query(
            f"SELECT {self.column_list(columns)} FROM {self.source_sql(source)} "
            f"WHERE {self.quote(cursor_column)} IS NULL{order}"
        )

    def count_query(self, source: TableRef | str, where: str | None = None) -> Query:
        """``SELECT COUNT(*)`` of a source, optionally filtered by raw SQL ``where``."""
        clause = f" WHERE {where}" if where else ""
        return Query(f"SELECT COUNT(*) FROM {self.source_sql(source)}{clause}")

    def full_query(
        self,
        source: TableRef | str,
        columns: Sequence[str],
        key_columns: Sequence[str],
        key_slice: KeySlice | None = None,
    ) -> Query:
        """Every row of the source (of one partition, with ``key_slice``), ordered by key when keys are
        given (strategy ``full``)."""
        bind = Binder(self.capabilities.param_style)
        where = f" WHERE {self.slice_predicate(key_slice, bind)}" if key_slice is not None else ""
        order = f" ORDER BY {self.column_list(key_columns)}" if key_columns else ""
        return bind.query(f"SELECT {self.column_list(columns)} FROM {self.source_sql(source)}{where}{order}")
