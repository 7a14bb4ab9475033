"""MySQL and MariaDB through mysqlclient (``MySQLdb``).

Reads stream through an unbuffered ``SSCursor``. Loads write the rows column-wise (pyarrow) into a
temporary tab-separated file and run ``LOAD DATA LOCAL INFILE`` into a temporary staging table, then
``INSERT ... SELECT ... ON DUPLICATE KEY UPDATE``. The session time zone is UTC, so ``TIMESTAMP`` columns
read and write UTC; tz-aware Arrow timestamps are stored as UTC in ``DATETIME(6)`` columns.

The named-pipe feeder and the parsing of load warnings live in :mod:`.mysql_load`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import tempfile
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

from ._ledger import lock_digest
from .base import Capabilities
from .copy_pipeline import NestedLoads
from .mysql_load import WARNING_ROW, PipeFeeder, warning_column
from .mysql_types import MySQLTypes
from .types import Column, Query, TableRef

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.core.partitions import KeySlice

    from .connection import ConnectionInfo

_CONNECT_OPTIONS = ("ssl", "ssl_mode", "unix_socket", "connect_timeout", "read_timeout", "write_timeout")


class MySQLDialect(MySQLTypes):
    capabilities = Capabilities(
        name="mysql",
        driver_module="MySQLdb",
        pip_extra="mysql",
        change_capture="airflow_provider_sync.cdc.runner:BinlogCapture",
        param_style="format",
        bulk_load="load_data_local_infile",
        upsert_style="on_duplicate_key",
        identifier_quote=("`", "`"),
        max_identifier_length=64,
        # MySQL/MariaDB accept row values but do not use an index range for them: expand instead.
        row_value_comparison=False,
        transactional_ddl=False,
        supports_schemas=True,
        native_json=True,
        target_lock="get_lock",
        target_lock_session=True,
    )

    def connect(self, info: ConnectionInfo) -> Any:
        from . import require_driver

        mysqldb: Any = require_driver("mysql")
        options = {k: v for k, v in info.extra.items() if k in _CONNECT_OPTIONS}
        kwargs: dict[str, Any] = {
            "host": info.host or "localhost",
            "port": int(info.port or 3306),
            "user": info.login or "",
            "password": info.password or "",
            "charset": "utf8mb4",
            "local_infile": 1,
            "autocommit": False,
            "init_command": "SET time_zone = '+00:00'",
            **options,
        }
        if info.database:
            kwargs["database"] = info.database
        return mysqldb.connect(**kwargs)

    def begin_snapshot(self, conn: Any) -> None:
        conn.rollback()
        self.execute(conn, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").close()
        # Not READ ONLY: MariaDB then refuses the temporary table query_columns() needs.
        self.execute(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT").close()

    def bind_value(self, value: Any) -> Any:
        # mysqlclient drops tzinfo and sends the wall time; the session zone is UTC, so send UTC.
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value

    def streaming_cursor(self, conn: Any) -> Any:
        from MySQLdb.cursors import SSCursor

        return conn.cursor(SSCursor)

    def driver_modules(self) -> tuple[str, ...]:
        return ("MySQLdb", "mysql")

    def is_transient(self, exc: BaseException) -> bool:
        code = exc.args[0] if getattr(exc, "args", None) else None
        return code in (1040, 1205, 1213, 2002, 2003, 2006, 2013)

    def is_unique_violation(self, exc: BaseException) -> bool:
        import MySQLdb

        return isinstance(exc, MySQLdb.IntegrityError) and bool(exc.args) and exc.args[0] == 1062

    # ----------------------------------------------------------------- introspection
    def _schema_param(self, table: TableRef) -> list[Any]:
        return [table.schema, table.name]

    def table_exists(self, conn: Any, table: TableRef) -> bool:
        return bool(
            self.scalar(
                conn,
                self._query(
                    "SELECT COUNT(*) FROM information_schema.tables "
                    "WHERE table_schema = COALESCE(%s, DATABASE()) AND table_name = %s",
                    table,
                ),
            )
        )

    def _query(self, sql: str, table: TableRef) -> Any:
        from .types import Query

        return Query(sql, self._schema_param(table))

    def get_columns(self, conn: Any, table: TableRef) -> list[Column]:
        cursor = self.execute(
            conn,
            self._query(
                "SELECT column_name, column_type, is_nullable FROM information_schema.columns "
                "WHERE table_schema = COALESCE(%s, DATABASE()) AND table_name = %s ORDER BY ordinal_position",
                table,
            ),
        )
        rows = cursor.fetchall()
        cursor.close()
        if not rows:
            raise TerminalError(f"table {table} does not exist in MySQL/MariaDB; check schema/table")
        jsons = self._mariadb_json_columns(conn, table)
        return [
            Column(name, "json" if name in jsons else db_type, self.arrow_type(db_type), nullable == "YES")
            for name, db_type, nullable in rows
        ]

    def _mariadb_json_columns(self, conn: Any, table: TableRef) -> set[str]:
        """MariaDB's JSON is LONGTEXT plus a ``json_valid(col)`` column check: find those columns so they
        stay JSON. (MySQL reports JSON itself and has no ``level`` column here: the query then fails.)"""
        import MySQLdb

        try:
            cursor = self.execute(
                conn,
                self._query(
                    "SELECT constraint_name, check_clause FROM information_schema.check_constraints "
                    "WHERE constraint_schema = COALESCE(%s, DATABASE()) AND table_name = %s "
                    "AND level = 'Column'",
                    table,
                ),
            )
        except MySQLdb.OperationalError:
            return set()
        found = {name for name, clause in cursor.fetchall() if clause == f"json_valid({self.quote(name)})"}
        cursor.close()
        return found

    def get_primary_key(self, conn: Any, table: TableRef) -> list[str]:
        cursor = self.execute(
            conn,
            self._query(
                "SELECT column_name FROM information_schema.key_column_usage WHERE table_schema = "
                "COALESCE(%s, DATABASE()) AND table_name = %s AND constraint_name = 'PRIMARY' "
                "ORDER BY ordinal_position",
                table,
            ),
        )
        names = [row[0] for row in cursor.fetchall()]
        cursor.close()
        return names

    def query_columns(self, conn: Any, sql: str) -> list[Column]:
        # The driver reports no declared types, so materialise the (empty) result as a temporary table -
        # allowed in a read-only transaction - and read its definition.
        probe = TableRef("sync_query_probe")
        self.execute(conn, f"DROP TEMPORARY TABLE IF EXISTS {self.qualify(probe)}").close()
        self.execute(
            conn, f"CREATE TEMPORARY TABLE {self.qualify(probe)} AS SELECT * FROM ({sql}) sync_src LIMIT 0"
        ).close()
        cursor = self.execute(conn, f"SHOW COLUMNS FROM {self.qualify(probe)}")
        rows = cursor.fetchall()
        cursor.close()
        self.execute(conn, f"DROP TEMPORARY TABLE {self.qualify(probe)}").close()
        return [Column(row[0], row[1], self.arrow_type(row[1]), row[2] == "YES") for row in rows]

    def estimate_rows(self, conn: Any, table: TableRef) -> int | None:
        estimate = self.scalar(
            conn,
            self._query(
                "SELECT table_rows FROM information_schema.tables "
                "WHERE table_schema = COALESCE(%s, DATABASE()) AND table_name = %s",
                table,
            ),
        )
        return int(estimate) if estimate else None

    def estimate_query_rows(self, conn: Any, query: Any) -> int | None:
        from .types import Query

        # MySQL 8 shows the plan's "filtered" share by default; MariaDB only with EXTENDED.
        extended = "EXTENDED " if "mariadb" in str(conn.get_server_info()).lower() else ""
        cursor = self.execute(conn, Query(f"EXPLAIN {extended}{query.sql}", query.params))
        names = [d[0].lower() for d in cursor.description]
        plan = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        cursor.close()
        # Without an index on the range, "filtered" is a guess and the scan's "rows" is the whole table.
        if len(plan) != 1 or not (plan[0].get("possible_keys") or plan[0].get("key")) or not plan[0]["rows"]:
            return None
        return int(int(plan[0]["rows"]) * float(plan[0].get("filtered") or 100) / 100) or None

    def get_unique_keys(self, conn: Any, table: TableRef) -> list[list[str]]:
        cursor = self.execute(
            conn,
            self._query(
                "SELECT index_name, column_name FROM information_schema.statistics WHERE table_schema = "
                "COALESCE(%s, DATABASE()) AND table_name = %s AND non_unique = 0 "
                "ORDER BY index_name, seq_in_index",
                table,
            ),
        )
        keys: dict[str, list[str]] = {}
        for index_name, column_name in cursor.fetchall():
            keys.setdefault(index_name, []).append(column_name)
        cursor.close()
        return list(keys.values())

    # ----------------------------------------------------------------- loading
    def byte_order_sql(self, column: str) -> str:
        return f"CAST({self.quote(column)} AS BINARY)"  # bytes of utf8mb4 (or latin1): code point order

    def create_staging_table(
        self, conn: Any, target: TableRef, columns: Sequence[str], within: KeySlice | None = None
    ) -> TableRef:
        """A temporary table to merge from - or the target itself while it holds no row (of the key slice
        ``within``, for a partition): an initial load has nothing to merge with, so the rows are loaded
        once instead of twice."""
        probe = self.execute(conn, self.no_rows_query(target, within))
        empty = bool(probe.fetchone()[0])
        probe.close()
        if empty:
            return target
        staging = self.helper_table(TableRef(target.name, target.schema), "__sync_stage")
        # TEMPORARY in both statements: plain CREATE/DROP TABLE would commit the open transaction.
        self.execute(conn, f"DROP TEMPORARY TABLE IF EXISTS {self.qualify(staging)}").close()
        self.execute(
            conn,
            f"CREATE TEMPORARY TABLE {self.qualify(staging)} AS "
            f"SELECT {self.column_list(columns)} FROM {self.qualify(target)} WHERE 1 = 0",
        ).close()
        return staging

    def bulk_insert(self, conn: Any, table: TableRef, batches: Iterable[pa.RecordBatch]) -> int:
        """``LOAD DATA LOCAL INFILE`` from a named pipe that a producer thread fills, batch by batch,
        while the server loads: reading, encoding and loading overlap, and no temporary file holds the
        whole load. An error of the producer is the load's error (the caller rolls back)."""
        from ._arrow import iter_nonempty

        deferred = _NESTED_LOADS.defer(conn, batches, lambda held: self.bulk_insert(conn, table, held))
        if deferred is not None:  # called while a load streams on conn: run once that one ended
            return deferred
        remaining = iter_nonempty(iter(batches))
        first = next(remaining, None)
        if first is None:
            return 0
        folder = tempfile.mkdtemp(prefix="sync-load-")
        path = os.path.join(folder, "rows.tsv")
        os.mkfifo(path, 0o600)
        feeder = PipeFeeder(path, itertools.chain([first], remaining))
        try:
            with _NESTED_LOADS.streaming(conn) as streaming:
                feeder.start()
                try:
                    cursor = self.execute(conn, self._load_query(path, table, first.schema))
                    cursor.close()
                finally:
                    feeder.finish()  # raises the producer's error, if any, before any warning check
                self._raise_on_warnings(conn, table)
                streaming.run_deferred()
        finally:
            os.unlink(path)
            os.rmdir(folder)
        return feeder.rows

    def _load_query(self, path: str, table: TableRef, schema: pa.Schema) -> Any:
        import pyarrow as pa

        from .types import Query

        targets, assignments = [], []
        for number, field in enumerate(schema):
            if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
                targets.append(f"@sync_v{number}")
                assignments.append(f"{self.quote(field.name)} = UNHEX(@sync_v{number})")
            else:
                targets.append(self.quote(field.name))
        set_clause = f" SET {', '.join(assignments)}" if assignments else ""
        return Query(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE {self.qualify(table)} CHARACTER SET utf8mb4 "
            f"({', '.join(targets)}){set_clause}",
            [path],
        )

    def _raise_on_warnings(self, conn: Any, table: TableRef) -> None:
        """LOAD DATA LOCAL turns bad values into warnings (it implies IGNORE): make them errors, naming
        the column and row but never the value."""
        count = conn.warning_count()  # read before SHOW WARNINGS, which resets it
        if not count:
            return
        cursor = self.execute(conn, "SHOW WARNINGS LIMIT 5")
        warnings = cursor.fetchall()
        cursor.close()
        details = []
        for _level, code, message in warnings:
            column = warning_column(message)
            row = WARNING_ROW.search(message)
            where = (f" column {column}" if column else "") + (f" row {row.group(1)}" if row else "")
            details.append(f"code {code}{where}")
        if any(code == 1062 for _level, code, _message in warnings):
            raise TerminalError(
                f"loading into {table}: the staged rows repeat a key of the table (code 1062); make the "
                "source rows unique by key (a query source may need DISTINCT or a GROUP BY)"
            )
        raise TerminalError(
            f"loading into {table} produced {count} warning(s) ({'; '.join(details)}): values "
            "do not fit the target columns; widen the target column types or map the schema"
        )

    def upsert_sql(
        self, staging: TableRef, target: TableRef, columns: Sequence[str], keys: Sequence[str]
    ) -> str:
        cols = self.column_list(columns)
        others = [c for c in columns if c not in keys] or list(keys[:1])
        # VALUES() works on MariaDB and MySQL (deprecated but kept in MySQL 8); MySQL only reports rows
        # whose values changed (2 per update, 0 when identical), which keeps unchanged rows untouched.
        assignments = ", ".join(f"{self.quote(c)} = VALUES({self.quote(c)})" for c in others)
        return (
            f"INSERT INTO {self.qualify(target)} ({cols}) SELECT {cols} FROM {self.qualify(staging)} "
            f"ON DUPLICATE KEY UPDATE {assignments}"
        )

    def updated_from_rowcount(self, rowcount: int, inserted: int) -> int:
        return max(rowcount - inserted, 0) // 2

    def rename_table_sql(self, table: TableRef, new_name: str) -> str:
        return f"RENAME TABLE {self.qualify(table)} TO {self.qualify(TableRef(new_name, table.schema))}"

    def swap_tables_sql(self, target: TableRef, loaded: TableRef, target_exists: bool = True) -> list[str]:
        if not target_exists:
            return [self.rename_table_sql(loaded, target.name)]
        retired = self.helper_table(target, "__sync_old")
        return [
            self.drop_table_sql(retired),
            # One RENAME TABLE statement swaps both names atomically.
            f"RENAME TABLE {self.qualify(target)} TO {self.qualify(retired)}, "
            f"{self.qualify(loaded)} TO {self.qualify(target)}",
            self.drop_table_sql(retired),
        ]

    def create_like_sql(self, existing: TableRef, new: TableRef) -> str | None:
        return f"CREATE TABLE {self.qualify(new)} LIKE {self.qualify(existing)}"

    # ----------------------------------------------------------------- shared targets
    current_schema_sql = "SELECT DATABASE()"

    def target_lock_query(self, identity: str) -> Query:
        # A session lock (names are server-wide, so the identity carries the database): it survives the
        # implicit commits of DDL and is released when the load's connection closes. MariaDB refuses a
        # negative (endless) wait, so wait up to a day; the task's execution_timeout comes first.
        return Query("SELECT GET_LOCK(%s, %s)", [f"sync:{lock_digest(identity).hex()[:40]}", 86_400])

    def target_lock_granted(self, cursor: Any) -> bool:
        row = cursor.fetchone()
        return bool(row and row[0] == 1)

    def ledger_timestamp_type(self) -> str:
        return "DATETIME(6)"


_NESTED_LOADS = NestedLoads()
