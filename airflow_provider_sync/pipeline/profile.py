"""A column profile of one table through a DB-API connection: catalog facts plus a bounded sample.

The sample is read once (``dialects/catalog.py`` bounds it by LIMIT, and by TABLESAMPLE on PostgreSQL);
nulls, distinct values, min/max, top values, text lengths, value-pattern shares and the order check are
computed from it in Python. The catalog's statistics (pg_stats, index cardinality) are added where the
database keeps them, each labelled with its source.
"""

from __future__ import annotations

import difflib
import itertools
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from airflow_provider_sync.core.kinds import type_kind
from airflow_provider_sync.core.suggest import ColumnProfile, TableProfile, value_pattern_shares
from airflow_provider_sync.dialects.base import Dialect
from airflow_provider_sync.dialects.catalog import CatalogFacts, list_tables, read_catalog, sample_query
from airflow_provider_sync.dialects.types import Column, TableRef
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.pipeline.profile_defaults import DEFAULT_SAMPLE_ROWS

TOP_VALUES = 10


def arrow_kind(arrow_type: pa.DataType) -> str:
    """The coarse kind of a column type the suggestions reason about."""
    return type_kind(arrow_type)


def check_table(dialect: Dialect, conn: Any, table: TableRef) -> None:
    """TerminalError naming the closest table names when ``table`` does not exist."""
    if dialect.table_exists(conn, table):
        return
    names = list_tables(dialect, conn)
    # Match on the qualified name and on the bare one, so `orders` finds `public.orderz` and `shop.orders`.
    bare = {name.rpartition(".")[2]: name for name in names}
    close = difflib.get_close_matches(str(table), names, n=5, cutoff=0.6)
    close += [bare[n] for n in difflib.get_close_matches(table.name, list(bare), n=5, cutoff=0.6)]
    close = list(dict.fromkeys(close))[:5]
    hint = f"close names: {', '.join(close)}" if close else f"{len(names)} table(s) there, none close"
    raise TerminalError(f"table {table} not found in the {dialect.capabilities.name} database; {hint}")


def _distinct_estimate(catalog: CatalogFacts, name: str, sampled: int, distinct: int) -> tuple[float, str]:
    stats = catalog.stats.get(name)
    if stats is not None and stats.n_distinct is not None:
        value = stats.n_distinct
        if value < 0 and catalog.estimated_rows:  # a share of the rows, as pg_stats writes it
            value = round(-value * catalog.estimated_rows)
        return value, stats.source
    return float(distinct), f"sample of {sampled}"


def _ordered(values: Sequence[Any]) -> tuple[Any, Any]:
    try:
        return min(values), max(values)
    except TypeError:  # mixed types in one column (SQLite): compare by text
        texts = [str(v) for v in values]
        return min(texts), max(texts)


def _key_order(rows: list[tuple[Any, ...]], position: int, key_positions: list[int]) -> tuple[float, int]:
    """Share of adjacent pairs, rows sorted by the key, whose value at ``position`` does not decrease."""
    try:
        ordered = sorted(rows, key=lambda row: tuple(row[i] for i in key_positions))
        values = [row[position] for row in ordered if row[position] is not None]
        pairs = list(itertools.pairwise(values))
        rising = sum(1 for before, after in pairs if after >= before)
    except TypeError:
        return 0.0, 0
    return (rising / len(pairs) if pairs else 0.0), len(pairs)


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    return str(value)


def profile_column(
    column: Column,
    catalog: CatalogFacts,
    rows: list[tuple[Any, ...]],
    position: int,
    key_positions: list[int],
) -> ColumnProfile:
    values = [row[position] for row in rows]
    present = [value for value in values if value is not None]
    counts = Counter(_text(value) for value in present)
    lengths = [len(value) for value in present if isinstance(value, str)]
    minimum, maximum = _ordered(present) if present else (None, None)
    estimate, source = _distinct_estimate(catalog, column.name, len(rows), len(counts))
    stats = catalog.stats.get(column.name)
    share, pairs = (None, 0)
    if key_positions and position not in key_positions:
        share, pairs = _key_order(rows, position, key_positions)
    indexes = tuple(i.name for i in catalog.indexes if i.columns and i.columns[0] == column.name)
    if not indexes and catalog.primary_key[:1] == [column.name]:
        indexes = ("primary key",)
    return ColumnProfile(
        name=column.name,
        db_type=column.db_type,
        kind=arrow_kind(column.arrow_type),
        declared_not_null=not column.nullable,
        sampled=len(rows),
        nulls=len(values) - len(present),
        distinct=len(counts),
        distinct_estimate=estimate,
        distinct_source=source,
        catalog_null_frac=stats.null_frac if stats else None,
        catalog_most_common=stats.most_common if stats else (),
        minimum=minimum,
        maximum=maximum,
        top_values=sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_VALUES],
        min_length=min(lengths) if lengths else None,
        max_length=max(lengths) if lengths else None,
        pattern_shares=value_pattern_shares(present),
        key_order_share=share,
        key_order_pairs=pairs,
        correlation=stats.correlation if stats else None,
        generated=catalog.generated.get(column.name),
        indexes=indexes,
    )


def profile_table(
    dialect: Dialect, conn: Any, table: TableRef, sample_rows: int = DEFAULT_SAMPLE_ROWS
) -> TableProfile:
    """The profile of ``table``: catalog facts and a sample of at most ``sample_rows`` rows."""
    if sample_rows < 1:
        raise TerminalError(f"the sample size must be at least 1 row, got {sample_rows}")
    # One read-only snapshot (where the database has one): catalog and sample agree, nothing is written.
    dialect.begin_snapshot(conn)
    check_table(dialect, conn, table)
    catalog = read_catalog(dialect, conn, table)
    names = [column.name for column in catalog.columns]
    sql, method = sample_query(dialect, table, names, sample_rows, catalog.estimated_rows)
    cursor = dialect.execute(conn, sql)
    try:
        rows = [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()
    conn.rollback()  # end the read-only snapshot
    key_positions = [names.index(name) for name in catalog.primary_key if name in names]
    return TableProfile(
        table=str(table),
        dialect=dialect.capabilities.name,
        estimated_rows=catalog.estimated_rows,
        sample_rows=len(rows),
        sample_method=method,
        primary_key=list(catalog.primary_key),
        unique_keys=[list(key) for key in catalog.unique_keys],
        columns=[
            profile_column(column, catalog, rows, position, key_positions)
            for position, column in enumerate(catalog.columns)
        ],
    )
