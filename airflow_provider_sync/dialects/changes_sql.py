"""The SQL the change apply needs, for every table dialect (PostgreSQL, MySQL/MariaDB, SQLite; the shapes
are standard SQL, so others work where they accept them).

- work tables: a temporary table with some of a target's columns, to bulk-load keys or rows into;
- deletes by key: ``DELETE`` (or, for soft deletes, ``UPDATE ... SET flag = TRUE``) of the target rows
  whose key is in a work table, and of those whose key is *not* in it (a re-snapshot's leftovers);
- the positions table ``sync_cdc_positions(pipeline, table_name, position, updated_at)``: one row per
  pipeline and table, the last change position applied, written in the apply's transaction.

Names are quoted with the dialect's own helpers; values are bound in its parameter style.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

from .types import Binder, Query, TableRef

if TYPE_CHECKING:
    import pyarrow as pa

    from .base import Dialect

POSITIONS_TABLE = "sync_cdc_positions"
POSITION_COLUMNS = ("pipeline", "table_name", "position", "updated_at")
_TEMP_SCHEMAS = {"postgres": "pg_temp", "sqlite": "temp"}


@cache
def positions_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("pipeline", pa.string(), nullable=False),
            pa.field("table_name", pa.string(), nullable=False),
            pa.field("position", pa.string(), nullable=False),
            pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )


def positions_table_sql(dialect: Dialect, table: TableRef) -> str:
    """``CREATE TABLE`` for the positions table, keyed on (pipeline, table_name)."""
    return dialect.create_table_sql(table, positions_schema(), ("pipeline", "table_name"))


def select_position_query(dialect: Dialect, table: TableRef, pipeline: str, table_name: str) -> Query:
    """The stored position of one pipeline's table (no row: nothing applied yet)."""
    return dialect.select_query(table, ["position"], {"pipeline": pipeline, "table_name": table_name})


def upsert_position_query(
    dialect: Dialect, table: TableRef, pipeline: str, table_name: str, position: str, when: dt.datetime
) -> Query:
    """Insert or overwrite the position of one pipeline's table."""
    bind = Binder(dialect.capabilities.param_style)
    names = dialect.column_list(POSITION_COLUMNS)
    values = ", ".join(bind(v) for v in (pipeline, table_name, position, _stored_time(dialect, when)))
    head = f"INSERT INTO {dialect.qualify(table)} ({names}) VALUES ({values})"
    position_col, updated_col = dialect.quote("position"), dialect.quote("updated_at")
    if dialect.capabilities.upsert_style == "on_duplicate_key":
        tail = (
            f" ON DUPLICATE KEY UPDATE {position_col} = VALUES({position_col}), "
            f"{updated_col} = VALUES({updated_col})"
        )
    else:  # on_conflict: PostgreSQL and SQLite
        tail = (
            f" ON CONFLICT ({dialect.column_list(['pipeline', 'table_name'])}) DO UPDATE SET "
            f"{position_col} = excluded.{position_col}, {updated_col} = excluded.{updated_col}"
        )
    return bind.query(head + tail)


def _stored_time(dialect: Dialect, when: dt.datetime) -> object:
    """UTC; SQLite and MySQL columns hold naive wall time, PostgreSQL's a zone-aware value."""
    utc = when.astimezone(dt.timezone.utc)
    return utc if dialect.capabilities.name == "postgres" else utc.replace(tzinfo=None)


def work_table(dialect: Dialect, target: TableRef, suffix: str) -> TableRef:
    """The name of a temporary work table for ``target`` (temporary tables live outside any schema)."""
    # Qualified with the temporary schema where there is one, so a DROP can never reach a real table.
    schema = _TEMP_SCHEMAS.get(dialect.capabilities.name)
    return dialect.helper_table(TableRef(target.name, schema), suffix)


def create_work_table_sql(
    dialect: Dialect, work: TableRef, target: TableRef, columns: Sequence[str]
) -> list[str]:
    """Statements that (re)create temporary ``work`` with ``columns`` typed as in ``target``."""
    return [
        f"DROP {_temporary(dialect)}TABLE IF EXISTS {dialect.qualify(work)}",
        f"CREATE TEMPORARY TABLE {dialect.qualify(work)} AS SELECT {dialect.column_list(columns)} "
        f"FROM {dialect.qualify(target)} WHERE 1 = 0",
    ]


def _temporary(dialect: Dialect) -> str:
    # MySQL's DROP TEMPORARY TABLE never touches a real table (nor commits); the others have no such form.
    return "TEMPORARY " if dialect.capabilities.upsert_style == "on_duplicate_key" else ""


def _key_match(dialect: Dialect, target: TableRef, work: TableRef, keys: Sequence[str]) -> str:
    return " AND ".join(
        f"{dialect.qualify(work)}.{dialect.quote(k)} = {dialect.qualify(target)}.{dialect.quote(k)}"
        for k in keys
    )


def _keyed(dialect: Dialect, target: TableRef, work: TableRef, keys: Sequence[str], present: bool) -> str:
    negate = "" if present else "NOT "
    match = _key_match(dialect, target, work, keys)
    return f"{negate}EXISTS (SELECT 1 FROM {dialect.qualify(work)} WHERE {match})"


def delete_by_keys_sql(
    dialect: Dialect, target: TableRef, work: TableRef, keys: Sequence[str], *, present: bool = True
) -> str:
    """Delete the target rows whose key is in ``work`` (``present=False``: whose key is not)."""
    return f"DELETE FROM {dialect.qualify(target)} WHERE {_keyed(dialect, target, work, keys, present)}"


def soft_delete_by_keys_sql(
    dialect: Dialect,
    target: TableRef,
    work: TableRef,
    keys: Sequence[str],
    flag: str,
    *,
    present: bool = True,
) -> str:
    """Set ``flag`` true on the target rows whose key is in ``work`` (``present=False``: is not) and
    whose flag is not already true (rows written again only when they change)."""
    column = dialect.quote(flag)
    return (
        f"UPDATE {dialect.qualify(target)} SET {column} = TRUE "
        f"WHERE {_keyed(dialect, target, work, keys, present)} AND ({column} IS NULL OR {column} = FALSE)"
    )
