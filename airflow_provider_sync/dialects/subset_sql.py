"""Statements of a test-data subset: count and read the root rows matching a filter, and read the rows
whose column (or key) is in a set of values.

Functions over a :class:`~.base.Dialect` (its quoting, qualifying and parameter style), so
``pipeline/subset.py`` writes no SQL. Values are always bound, in chunks of :data:`IN_CHUNK` so no database's
parameter limit is reached (SQL Server takes 2,100, older SQLite 999). The ``where`` filter is the pipeline
file's own SQL (checked to be one expression when the file is validated, like a source ``query``) and is
put in parentheses.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .types import Binder, Query, TableRef

if TYPE_CHECKING:
    from .base import Dialect

#: Values bound per statement.
IN_CHUNK = 500


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    """``values`` in slices of at most ``size``."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _filter(where: str | None) -> str:
    return f" WHERE ({where})" if where else ""


def count_where_query(dialect: Dialect, table: TableRef, where: str | None) -> Query:
    """``SELECT COUNT(*) FROM table [WHERE (where)]``."""
    return Query(f"SELECT COUNT(*) FROM {dialect.qualify(table)}{_filter(where)}")


def select_where_query(dialect: Dialect, table: TableRef, columns: Sequence[str], where: str | None) -> Query:
    """``SELECT columns FROM table [WHERE (where)]``."""
    return Query(f"SELECT {dialect.column_list(columns)} FROM {dialect.qualify(table)}{_filter(where)}")


def select_in_query(
    dialect: Dialect, table: TableRef, columns: Sequence[str], column: str, values: Sequence[Any]
) -> Query:
    """``SELECT columns FROM table WHERE column IN (?, ...)`` (at most :data:`IN_CHUNK` values)."""
    if not values:
        raise ValueError("an IN list needs at least one value")
    bind = Binder(dialect.capabilities.param_style)
    marks = ", ".join(bind(value) for value in values)
    return bind.query(
        f"SELECT {dialect.column_list(columns)} FROM {dialect.qualify(table)} "
        f"WHERE {dialect.quote(column)} IN ({marks})"
    )


def select_keys_query(
    dialect: Dialect,
    table: TableRef,
    columns: Sequence[str],
    keys: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> Query:
    """The rows whose key ``keys`` is one of ``rows`` (key tuples): ``k IN (...)`` for a one-column key,
    ``(k1 = ? AND k2 = ?) OR ...`` for a composite one."""
    if len(keys) == 1:
        return select_in_query(dialect, table, columns, keys[0], [row[0] for row in rows])
    if not rows:
        raise ValueError("a key list needs at least one key")
    bind = Binder(dialect.capabilities.param_style)
    terms = [
        "("
        + " AND ".join(f"{dialect.quote(key)} = {bind(value)}" for key, value in zip(keys, row, strict=True))
        + ")"
        for row in rows
    ]
    return bind.query(
        f"SELECT {dialect.column_list(columns)} FROM {dialect.qualify(table)} WHERE {' OR '.join(terms)}"
    )
