"""Catalog and statistics facts for ``airflow-sync init`` / ``profile``: keys, indexes, generated columns,
the planner's statistics, the table list, and a bounded sample query, per database.

Everything here reads the catalog only (cheap), except :func:`sample_query`, whose SQL is bounded by a
``LIMIT`` (and, on PostgreSQL with a row estimate, a ``TABLESAMPLE SYSTEM`` share of the pages).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

if TYPE_CHECKING:
    from .base import Dialect
    from .types import Column, TableRef


@dataclass(frozen=True)
class IndexInfo:
    name: str
    columns: tuple[str, ...]
    unique: bool


@dataclass(frozen=True)
class ColumnStats:
    """The planner's statistics of one column (PostgreSQL ``pg_stats``; MySQL index cardinality)."""

    null_frac: float | None = None
    n_distinct: float | None = None
    """As pg_stats says it: positive is a count, negative is minus the share of rows (-1: all distinct)."""
    correlation: float | None = None
    """Statistical correlation of the physical row order with the column's values (-1 .. 1)."""
    most_common: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class CatalogFacts:
    columns: list[Column]
    primary_key: list[str]
    unique_keys: list[list[str]]
    indexes: list[IndexInfo]
    generated: dict[str, str] = field(default_factory=dict)
    """Columns the database fills from a sequence, and how (``identity``, ``nextval(...)``, ...)."""
    stats: dict[str, ColumnStats] = field(default_factory=dict)
    estimated_rows: int | None = None


def _rows(dialect: Dialect, conn: Any, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    from .types import Query

    cursor = dialect.execute(conn, Query(sql, params or []))
    try:
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


# ---------------------------------------------------------------------------------------------- PostgreSQL
_PG_INDEXES = """
SELECT i.relname, ix.indisunique, array_agg(a.attname::text ORDER BY k.ord)
FROM pg_index ix
JOIN pg_class t ON t.oid = ix.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_class i ON i.oid = ix.indexrelid
CROSS JOIN LATERAL unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
WHERE t.relname = %s AND n.nspname = COALESCE(%s, current_schema())
GROUP BY i.relname, ix.indisunique ORDER BY i.relname
"""
_PG_GENERATED = """
SELECT a.attname, a.attidentity, pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a
JOIN pg_class t ON t.oid = a.attrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE t.relname = %s AND n.nspname = COALESCE(%s, current_schema()) AND a.attnum > 0
  AND NOT a.attisdropped AND (a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%%')
"""
_PG_STATS = """
SELECT attname::text, null_frac, n_distinct, correlation, most_common_vals::text::text[]
FROM pg_stats WHERE schemaname = COALESCE(%s, current_schema()) AND tablename = %s
"""


def _postgres_facts(dialect: Dialect, conn: Any, table: TableRef) -> dict[str, Any]:
    where = [table.name, table.schema]
    indexes = [IndexInfo(name, tuple(cols), bool(unique)) for name, unique, cols in _rows(
        dialect, conn, _PG_INDEXES, where)]  # fmt: skip
    generated = {
        name: ("identity column" if identity else f"default {default}")
        for name, identity, default in _rows(dialect, conn, _PG_GENERATED, where)
    }
    stats = {
        name: ColumnStats(
            null_frac=_float(null_frac),
            n_distinct=_float(n_distinct),
            correlation=_float(correlation),
            most_common=tuple(str(v) for v in (common or ())[:10]),
            source="pg_stats (ANALYZE)",
        )
        for name, null_frac, n_distinct, correlation, common in _rows(
            dialect, conn, _PG_STATS, [table.schema, table.name]
        )
    }
    return {"indexes": indexes, "generated": generated, "stats": stats}


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# ---------------------------------------------------------------------------------------------- MySQL
_MYSQL_INDEXES = (
    "SELECT index_name, non_unique, column_name, cardinality FROM information_schema.statistics "
    "WHERE table_schema = COALESCE(%s, DATABASE()) AND table_name = %s ORDER BY index_name, seq_in_index"
)
_MYSQL_GENERATED = (
    "SELECT column_name, extra FROM information_schema.columns WHERE table_schema = COALESCE(%s, DATABASE()) "
    "AND table_name = %s AND extra LIKE '%%auto_increment%%'"
)


def _mysql_facts(dialect: Dialect, conn: Any, table: TableRef) -> dict[str, Any]:
    where = [table.schema, table.name]
    grouped: dict[str, tuple[bool, list[str]]] = {}
    stats: dict[str, ColumnStats] = {}
    for index_name, non_unique, column, cardinality in _rows(dialect, conn, _MYSQL_INDEXES, where):
        _unique, columns = grouped.setdefault(index_name, (not int(non_unique), []))
        if not columns and cardinality is not None:  # the index's cardinality counts its first column
            stats[column] = ColumnStats(
                n_distinct=float(cardinality), source=f"cardinality of index {index_name}"
            )
        columns.append(column)
    indexes = [IndexInfo(name, tuple(cols), unique) for name, (unique, cols) in grouped.items()]
    generated = {name: "auto_increment" for name, _extra in _rows(dialect, conn, _MYSQL_GENERATED, where)}
    return {"indexes": indexes, "generated": generated, "stats": stats}


# ---------------------------------------------------------------------------------------------- SQLite
def _sqlite_facts(dialect: Dialect, conn: Any, table: TableRef) -> dict[str, Any]:
    schema = dialect.quote(table.schema or "main")
    indexes = []
    for _seq, name, unique, _origin, _partial in _rows(
        dialect, conn, f"PRAGMA {schema}.index_list({dialect.quote(table.name)})"
    ):
        info = _rows(dialect, conn, f"PRAGMA {schema}.index_info({dialect.quote(name)})")
        indexes.append(IndexInfo(name, tuple(col for _n, _cid, col in sorted(info)), bool(unique)))
    generated = {}
    primary_key = dialect.get_primary_key(conn, table)
    columns = {column.name: column for column in dialect.get_columns(conn, table)}
    if len(primary_key) == 1 and columns[primary_key[0]].db_type == "integer":
        # INTEGER PRIMARY KEY is the rowid: a new row gets max(rowid) + 1 unless given one.
        generated[primary_key[0]] = "INTEGER PRIMARY KEY (rowid alias)"
    return {"indexes": indexes, "generated": generated, "stats": {}}


_FACTS = {"postgres": _postgres_facts, "mysql": _mysql_facts, "sqlite": _sqlite_facts}


def read_catalog(dialect: Dialect, conn: Any, table: TableRef) -> CatalogFacts:
    """Keys, indexes, generated columns and statistics of ``table``; TerminalError for another database."""
    name = dialect.capabilities.name
    reader = _FACTS.get(name)
    if reader is None:
        raise TerminalError(
            f"reading the catalog of a {name} database is not supported yet; "
            f"supported: {', '.join(sorted(_FACTS))}"
        )
    extra = reader(dialect, conn, table)
    return CatalogFacts(
        columns=dialect.get_columns(conn, table),
        primary_key=dialect.get_primary_key(conn, table),
        unique_keys=dialect.get_unique_keys(conn, table),
        estimated_rows=dialect.estimate_rows(conn, table),
        **extra,
    )


_TABLE_LISTS = {
    "postgres": "SELECT table_schema || '.' || table_name FROM information_schema.tables "
    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema NOT LIKE 'pg_toast%%'",
    "mysql": "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
    "sqlite": "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'",
}


def list_tables(dialect: Dialect, conn: Any) -> list[str]:
    """The tables a user could have meant (for "did you mean"): PostgreSQL's as ``schema.table``."""
    sql = _TABLE_LISTS.get(dialect.capabilities.name)
    return sorted(str(row[0]) for row in _rows(dialect, conn, sql)) if sql else []


def sample_query(
    dialect: Dialect, table: TableRef, columns: list[str], rows: int, estimated_rows: int | None
) -> tuple[str, str]:
    """SQL reading at most ``rows`` rows of ``table``, and a sentence saying how it samples."""
    selected = f"SELECT {dialect.column_list(columns)} FROM {dialect.qualify(table)}"
    if dialect.capabilities.name == "postgres" and estimated_rows and estimated_rows > rows:
        # SYSTEM picks whole pages: cheap on any size. A fifth more than needed, shuffled, so the LIMIT
        # keeps rows from all sampled pages rather than the first ones (sorting ~1.2 x rows is cheap).
        percent = min(100.0, round(120.0 * rows / estimated_rows, 4))
        return (
            f"{selected} TABLESAMPLE SYSTEM ({percent}) ORDER BY random() LIMIT {int(rows)}",
            f"TABLESAMPLE SYSTEM ({percent}%) of ~{estimated_rows:,} rows, at most {rows:,}",
        )
    return f"{selected} LIMIT {int(rows)}", f"at most {rows:,} rows in storage order (LIMIT)"
