"""Plain statements on bookkeeping and target tables: select, insert, delete, update, add column, savepoints.

Callers name tables, columns and values; these methods quote the names and bind the values in the driver's
parameter style, so no SQL text is written outside ``dialects/``. Conditions are equalities joined with
``AND`` (``where``), optionally with ``IS NOT NULL`` tests (``not_null``); values are bound in the order
they appear in the statement text, which is what positional styles (``?``, ``%s``) need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ._names import SQLNames
from .types import Binder, Query, TableRef

if TYPE_CHECKING:
    import pyarrow as pa


class DMLSQL(SQLNames):
    """The statement shapes audit, quarantine, lookups, key rotation and status need."""

    #: What follows ``ALTER TABLE t`` to add one column (SQL Server and Oracle say just ``ADD``).
    add_column_clause: ClassVar[str] = "ADD COLUMN"

    def sql_type(self, field: pa.Field, *, is_key: bool = False) -> str:
        """The column type for an Arrow field; every :class:`~.base.Dialect` implements it."""
        raise NotImplementedError

    # ----------------------------------------------------------------- conditions
    def condition_sql(
        self, bind: Binder, where: Mapping[str, Any] | None = None, not_null: Sequence[str] = ()
    ) -> str:
        """``"a" = ? AND "b" IS NOT NULL`` (empty text when there is no condition)."""
        parts = [f"{self.quote(name)} = {bind(value)}" for name, value in (where or {}).items()]
        parts += [f"{self.quote(name)} IS NOT NULL" for name in not_null]
        return " AND ".join(parts)

    def _where(self, bind: Binder, where: Mapping[str, Any] | None, not_null: Sequence[str] = ()) -> str:
        condition = self.condition_sql(bind, where, not_null)
        return f" WHERE {condition}" if condition else ""

    # ----------------------------------------------------------------- reading
    def select_query(
        self,
        table: TableRef,
        columns: Sequence[str],
        where: Mapping[str, Any] | None = None,
        *,
        not_null: Sequence[str] = (),
        order_by: Sequence[str] = (),
        descending: bool = False,
    ) -> Query:
        """``SELECT columns FROM table [WHERE ...] [ORDER BY ... [DESC]]``."""
        bind = Binder(self.capabilities.param_style)
        condition = self._where(bind, where, not_null)
        sql = f"SELECT {self.column_list(columns)} FROM {self.qualify(table)}{condition}"
        if order_by:
            direction = " DESC" if descending else ""
            sql += " ORDER BY " + ", ".join(f"{self.quote(name)}{direction}" for name in order_by)
        return bind.query(sql)

    def count_query(self, table: TableRef) -> Query:
        """``SELECT COUNT(*) FROM table``."""
        return Query(f"SELECT COUNT(*) FROM {self.qualify(table)}")

    def byte_order_sql(self, column: str) -> str:
        """``column`` (quoted) as an ORDER BY term that sorts text by code point, as Python compares
        strings; databases whose default collation sorts otherwise override it."""
        return self.quote(column)

    def sorted_keys_query(self, table: TableRef, keys: Sequence[str], text_keys: Sequence[str] = ()) -> Query:
        """Every row's key columns, ascending, text keys by code point (a reconcile merges two such
        streams from different databases, so both must sort alike)."""
        order = ", ".join(self.byte_order_sql(k) if k in text_keys else self.quote(k) for k in keys)
        return Query(f"SELECT {self.column_list(keys)} FROM {self.qualify(table)} ORDER BY {order}")

    def latest_rows_query(
        self, table: TableRef, columns: Sequence[str], where: Mapping[str, Any], latest: str
    ) -> Query:
        """The rows matching ``where`` whose ``latest`` column holds the greatest value among them
        (e.g. the newest run row of one table in the audit table)."""
        bind = Binder(self.capabilities.param_style)
        outer = self.condition_sql(bind, where)
        inner = self.condition_sql(bind, where)
        newest = f"SELECT MAX({self.quote(latest)}) FROM {self.qualify(table)} WHERE {inner}"
        return bind.query(
            f"SELECT {self.column_list(columns)} FROM {self.qualify(table)} "
            f"WHERE {outer} AND {self.quote(latest)} = ({newest})"
        )

    def count_by_query(self, table: TableRef, column: str, where: Mapping[str, Any] | None = None) -> Query:
        """``SELECT column, COUNT(*) ... GROUP BY column``: how many rows hold each value."""
        bind = Binder(self.capabilities.param_style)
        return bind.query(
            f"SELECT {self.quote(column)}, COUNT(*) FROM {self.qualify(table)}{self._where(bind, where)} "
            f"GROUP BY {self.quote(column)}"
        )

    # ----------------------------------------------------------------- writing
    def insert_query(self, table: TableRef, values: Mapping[str, Any]) -> Query:
        """``INSERT INTO table (columns) VALUES (...)`` for one row, columns in ``values``' order."""
        bind = Binder(self.capabilities.param_style)
        placeholders = ", ".join(bind(value) for value in values.values())
        return bind.query(
            f"INSERT INTO {self.qualify(table)} ({self.column_list(list(values))}) VALUES ({placeholders})"
        )

    def delete_query(self, table: TableRef, where: Mapping[str, Any] | None = None) -> Query:
        """``DELETE FROM table [WHERE ...]`` (every row without ``where``)."""
        bind = Binder(self.capabilities.param_style)
        return bind.query(f"DELETE FROM {self.qualify(table)}{self._where(bind, where)}")

    def update_query(
        self, table: TableRef, assignments: Mapping[str, Any], where: Mapping[str, Any]
    ) -> Query:
        """``UPDATE table SET a = ? WHERE ...``. The same text comes out for the same column names, so one
        statement can be run with the parameters of many rows."""
        if not where:
            raise ValueError("update_query needs a condition; it never updates every row")
        bind = Binder(self.capabilities.param_style)
        settings = ", ".join(f"{self.quote(name)} = {bind(value)}" for name, value in assignments.items())
        return bind.query(f"UPDATE {self.qualify(table)} SET {settings}{self._where(bind, where)}")

    # ----------------------------------------------------------------- DDL
    def column_sql(self, field: pa.Field, *, is_key: bool = False) -> str:
        """One column definition: quoted name, type, and ``NOT NULL`` for keys and non-nullable fields."""
        null = " NOT NULL" if is_key or not field.nullable else ""
        return f"{self.quote(field.name)} {self.sql_type(field, is_key=is_key)}{null}"

    def add_column_sql(self, table: TableRef, field: pa.Field) -> str:
        """``ALTER TABLE table ADD COLUMN <definition>`` (bring a table made by an earlier release up to
        date; the field must be nullable, as rows already there get NULL)."""
        if not field.nullable:
            raise ValueError(f"column {field.name!r} is NOT NULL: the rows already in {table} have no value")
        return f"ALTER TABLE {self.qualify(table)} {self.add_column_clause} {self.column_sql(field)}"

    # ----------------------------------------------------------------- savepoints
    # Savepoint names are the engine's own plain identifiers, written unquoted as every database reads them.
    def savepoint_sql(self, name: str) -> str:
        return f"SAVEPOINT {name}"

    def rollback_to_savepoint_sql(self, name: str) -> str:
        return f"ROLLBACK TO SAVEPOINT {name}"

    def release_savepoint_sql(self, name: str) -> str:
        return f"RELEASE SAVEPOINT {name}"
