"""Microsoft SQL Server (2016+) through pymssql, the driver of Airflow's ``mssql`` provider.

Extraction reads under SNAPSHOT isolation when the database allows it (``ALTER DATABASE ... SET
ALLOW_SNAPSHOT_ISOLATION ON``), otherwise READ COMMITTED; keyset pages use ``TOP (n)`` and the expanded
OR/AND keyset predicate (T-SQL has no row-value comparison). Loads send multi-row ``INSERT ... VALUES``
statements (up to 1,000 rows each) into a ``#temp`` staging table, then ``MERGE ... WITH (HOLDLOCK)``
updates only rows whose values differ (``EXISTS (SELECT t.cols EXCEPT SELECT s.cols)``, which treats NULLs
as equal). ``replace`` renames tables with ``sp_rename`` inside the load transaction (DDL is transactional).

pymssql renders parameters into the SQL text and keeps only milliseconds of a ``datetime``; timestamps are
therefore sent as ISO 8601 text with all six fractional digits (three when the value has whole
milliseconds, so legacy ``DATETIME`` columns still accept them).

Column types and the driver's value forms live in :mod:`.mssql_types`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

from ._ledger import lock_digest
from .base import Capabilities
from .mssql_types import MSSQLTypes, driver_params, driver_value, sql_server_datetime
from .types import Binder, Column, Query, TableRef

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.core.partitions import KeySlice

    from .connection import ConnectionInfo

log = logging.getLogger(__name__)

MAX_ROWS_PER_INSERT = 1000  # SQL Server's limit for one VALUES list
MAX_PARAMETERS_PER_INSERT = 2000  # stays under the 2,100-parameter limit of drivers that bind server-side
TEMP_TABLE_NAME_LIMIT = 116
_CONNECT_OPTIONS = ("tds_version", "login_timeout", "timeout", "appname", "conn_properties", "encryption")
_SIZED_TYPES = ("char", "varchar", "nchar", "nvarchar", "binary", "varbinary")


class MSSQLDialect(MSSQLTypes):
    capabilities = Capabilities(
        name="mssql",
        driver_module="pymssql",
        pip_extra="mssql",
        param_style="format",
        bulk_load="multirow_insert_temp_table",
        upsert_style="merge",
        identifier_quote=("[", "]"),
        max_identifier_length=128,
        row_value_comparison=False,
        transactional_ddl=True,
        supports_schemas=True,
        native_json=False,
        target_lock="sp_getapplock",
    )

    # ----------------------------------------------------------------- connections
    def connect(self, info: ConnectionInfo) -> Any:
        from . import require_driver

        pymssql: Any = require_driver("mssql")
        # TDS 7.3+ returns DATE/TIME/DATETIME2/DATETIMEOFFSET as Python values instead of strings.
        options = {"tds_version": "7.4"}
        options.update({key: value for key, value in info.extra.items() if key in _CONNECT_OPTIONS})
        return pymssql.connect(
            server=info.host or "localhost",
            port=str(info.port or 1433),
            user=info.login or None,
            password=info.password or None,
            database=info.database or "",
            autocommit=False,
            **options,
        )

    def begin_snapshot(self, conn: Any) -> None:
        conn.rollback()
        allowed = self.scalar(
            conn, "SELECT snapshot_isolation_state FROM sys.databases WHERE name = DB_NAME()"
        )
        # A transaction that already read data under another level cannot switch to SNAPSHOT: start afresh.
        conn.rollback()
        if allowed == 1:
            self.execute(conn, "SET TRANSACTION ISOLATION LEVEL SNAPSHOT").close()
            return
        log.warning(
            "SQL Server database does not allow SNAPSHOT isolation; extracting under READ COMMITTED. "
            "Run ALTER DATABASE <name> SET ALLOW_SNAPSHOT_ISOLATION ON for a consistent snapshot."
        )
        self.execute(conn, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED").close()

    def execute(self, conn: Any, query: Query | str) -> Any:
        if isinstance(query, str):
            query = Query(query)
        cursor = conn.cursor()
        cursor.execute(query.sql, driver_params(query.params) if query.params else None)
        return cursor

    def read_batches(
        self, conn: Any, query: Query, columns: Sequence[Column], batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        converted = Query(query.sql, list(driver_params(query.params)) if query.params else [])
        return super().read_batches(conn, converted, columns, batch_size)

    # ----------------------------------------------------------------- identifiers
    def quote(self, identifier: str) -> str:
        if not identifier:
            raise ValueError("an empty identifier cannot be quoted")
        if len(identifier) > self.capabilities.max_identifier_length:
            raise TerminalError(
                f"SQL Server identifier {identifier[:40]!r}... is {len(identifier)} characters long; the "
                f"limit is {self.capabilities.max_identifier_length}. Rename it with a schema_map step"
            )
        # pymssql substitutes only %s / %(name)s markers and never un-doubles '%%', so '%' stays single.
        return "[" + identifier.replace("]", "]]") + "]"

    def _schema_expr(self, table: TableRef, bind: Binder) -> str:
        return bind(table.schema) if table.schema else "SCHEMA_NAME()"

    # ----------------------------------------------------------------- introspection
    def get_columns(self, conn: Any, table: TableRef) -> list[Column]:
        bind = Binder(self.capabilities.param_style)
        sql = (
            "SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale, "
            "datetime_precision, is_nullable FROM information_schema.columns "
            f"WHERE table_schema = {self._schema_expr(table, bind)} AND table_name = {bind(table.name)} "
            "ORDER BY ordinal_position"
        )
        cursor = self.execute(conn, bind.query(sql))
        rows = cursor.fetchall()
        cursor.close()
        if not rows:
            raise TerminalError(f"SQL Server table {table} does not exist or is not visible to this login")
        columns = []
        for name, data_type, length, precision, scale, dt_precision, nullable in rows:
            kind = str(data_type).lower()
            if kind in ("decimal", "numeric"):
                kind = f"{kind}({precision},{scale})"
            elif kind in _SIZED_TYPES and length is not None:
                kind = f"{kind}({'max' if length == -1 else length})"
            elif kind in ("datetime2", "datetimeoffset", "time") and dt_precision is not None:
                kind = f"{kind}({dt_precision})"
            columns.append(Column(name, kind, self.arrow_type(kind), nullable == "YES"))
        return columns

    def get_primary_key(self, conn: Any, table: TableRef) -> list[str]:
        bind = Binder(self.capabilities.param_style)
        sql = (
            "SELECT kcu.column_name FROM information_schema.table_constraints tc "
            "JOIN information_schema.key_column_usage kcu ON kcu.constraint_schema = tc.constraint_schema "
            "AND kcu.constraint_name = tc.constraint_name AND kcu.table_name = tc.table_name "
            "WHERE tc.constraint_type = 'PRIMARY KEY' "
            f"AND tc.table_schema = {self._schema_expr(table, bind)} AND tc.table_name = {bind(table.name)} "
            "ORDER BY kcu.ordinal_position"
        )
        cursor = self.execute(conn, bind.query(sql))
        names = [row[0] for row in cursor.fetchall()]
        cursor.close()
        return names

    # ----------------------------------------------------------------- DDL
    add_column_clause = "ADD"

    def column_sql(self, field: pa.Field, *, is_key: bool = False) -> str:
        """Nullability is always spelled out: a session's ANSI_NULL_DFLT setting would decide otherwise."""
        null = " NOT NULL" if is_key or not field.nullable else " NULL"
        return f"{self.quote(field.name)} {self.sql_type(field, is_key=is_key)}{null}"

    def limit_sql(self, sql: str, limit: int) -> str:
        if not sql.startswith("SELECT "):
            raise ValueError("limit_sql expects a statement starting with SELECT")
        return f"SELECT TOP ({int(limit)}) {sql[len('SELECT ') :]}"

    def rename_table_sql(self, table: TableRef, new_name: str) -> str:
        """``sp_rename`` takes the current (qualified) name and the new bare name as strings."""
        current = self.qualify(table).replace("'", "''")
        return f"EXEC sp_rename N'{current}', N'{new_name.replace(chr(39), chr(39) * 2)}'"

    # ----------------------------------------------------------------- loading
    def staging_name(self, target: TableRef) -> TableRef:
        suffix = "__sync_stage"
        return TableRef("#" + target.name[: TEMP_TABLE_NAME_LIMIT - 1 - len(suffix)] + suffix)

    def byte_order_sql(self, column: str) -> str:
        return f"{self.quote(column)} COLLATE Latin1_General_100_BIN2"  # code point order

    def create_staging_table(
        self, conn: Any, target: TableRef, columns: Sequence[str], within: KeySlice | None = None
    ) -> TableRef:
        staging = self.staging_name(target)
        self.execute(conn, self.drop_table_sql(staging)).close()
        self.execute(conn, self.staging_table_sql(staging, target, columns)).close()
        return staging

    def staging_table_sql(self, staging: TableRef, target: TableRef, columns: Sequence[str]) -> str:
        """``SELECT ... INTO #temp``; the UNION ALL keeps the column types but drops any IDENTITY property,
        so staged key values can be inserted."""
        cols = self.column_list(columns)
        empty = f"SELECT {cols} FROM {self.qualify(target)} WHERE 1 = 0"
        into = f"SELECT {cols} INTO {self.qualify(staging)} FROM {self.qualify(target)} WHERE 1 = 0"
        return f"{into} UNION ALL {empty}"

    def multirow_insert_sql(self, table: TableRef, columns: Sequence[str], rows: int) -> str:
        row = "(" + ", ".join("%s" for _ in columns) + ")"
        return f"INSERT INTO {self.qualify(table)} ({self.column_list(columns)}) VALUES " + ", ".join(
            [row] * rows
        )

    def bulk_insert(self, conn: Any, table: TableRef, batches: Iterable[pa.RecordBatch]) -> int:
        from ._arrow import batch_rows

        total = 0
        cursor = conn.cursor()
        try:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                names = batch.schema.names
                per_statement = max(1, min(MAX_ROWS_PER_INSERT, MAX_PARAMETERS_PER_INSERT // len(names)))
                rows = batch_rows(batch, self.param_converter)
                for start in range(0, len(rows), per_statement):
                    chunk = rows[start : start + per_statement]
                    values = tuple(value for row in chunk for value in row)
                    cursor.execute(self.multirow_insert_sql(table, names, len(chunk)), values)
                total += batch.num_rows
        finally:
            cursor.close()
        return total

    def upsert_sql(
        self, staging: TableRef, target: TableRef, columns: Sequence[str], keys: Sequence[str]
    ) -> str:
        others = [c for c in columns if c not in keys]
        on = " AND ".join(f"t.{self.quote(k)} = s.{self.quote(k)}" for k in keys)
        insert = (
            f"WHEN NOT MATCHED BY TARGET THEN INSERT ({self.column_list(columns)}) "
            f"VALUES ({self.column_list(columns, 's.')})"
        )
        head = (
            f"MERGE INTO {self.qualify(target)} WITH (HOLDLOCK) AS t "
            f"USING {self.qualify(staging)} AS s ON {on} "
        )
        if not others:
            return f"{head}{insert};"
        changed = (
            f"EXISTS (SELECT {self.column_list(others, 't.')} EXCEPT SELECT {self.column_list(others, 's.')})"
        )
        assignments = ", ".join(f"t.{self.quote(c)} = s.{self.quote(c)}" for c in others)
        return f"{head}WHEN MATCHED AND {changed} THEN UPDATE SET {assignments} {insert};"

    # ----------------------------------------------------------------- shared targets
    current_schema_sql = "SELECT SCHEMA_NAME()"

    def target_lock_query(self, identity: str) -> Query:
        # Owned by the transaction: released by the load's commit or rollback. Waits without limit; a
        # negative result (timeout, deadlock victim, error) means no lock.
        return Query(
            "SET NOCOUNT ON; DECLARE @granted INT; EXEC @granted = sp_getapplock @Resource = %s, "
            "@LockMode = 'Exclusive', @LockOwner = 'Transaction', @LockTimeout = -1; SELECT @granted",
            [f"airflow-provider-sync:{lock_digest(identity).hex()}"],
        )

    def target_lock_granted(self, cursor: Any) -> bool:
        row = cursor.fetchone()
        return bool(row and row[0] is not None and int(row[0]) >= 0)

    # ----------------------------------------------------------------- append ledger
    def ledger_table_sql(self, ledger: TableRef) -> str:
        # A NONCLUSTERED key may span 1,700 bytes (a clustered one only 900), room for four NVARCHAR(200).
        constraint = self.quote(self.helper_table(ledger, "__pk").name)
        return (
            super()
            .ledger_table_sql(ledger)
            .replace("PRIMARY KEY (", f"CONSTRAINT {constraint} PRIMARY KEY NONCLUSTERED (")
        )

    def ledger_text_type(self) -> str:
        return "NVARCHAR(200)"

    def ledger_timestamp_type(self) -> str:
        return "DATETIME2(6)"


__all__ = [
    "MAX_PARAMETERS_PER_INSERT",
    "MAX_ROWS_PER_INSERT",
    "MSSQLDialect",
    "driver_params",
    "driver_value",
    "sql_server_datetime",
]
