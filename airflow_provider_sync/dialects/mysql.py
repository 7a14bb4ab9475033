"""MySQL and MariaDB through mysqlclient (``MySQLdb``).

Reads stream through an unbuffered ``SSCursor``. Loads write the rows column-wise (pyarrow) into a
temporary tab-separated file and run ``LOAD DATA LOCAL INFILE`` into a temporary staging table, then
``INSERT ... SELECT ... ON DUPLICATE KEY UPDATE``. The session time zone is UTC, so ``TIMESTAMP`` columns
read and write UTC; tz-aware Arrow timestamps are stored as UTC in ``DATETIME(6)`` columns.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

from .base import Capabilities, Dialect
from .types import Column, TableRef

if TYPE_CHECKING:
    import pyarrow as pa

    from .connection import ConnectionInfo

_PRECISION = re.compile(r"\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")
_WARNING_COLUMN = re.compile(r"column [`']?([^`' ]+)")
_WARNING_ROW = re.compile(r"at row (\d+)")
_CONNECT_OPTIONS = ("ssl", "ssl_mode", "unix_socket", "connect_timeout", "read_timeout", "write_timeout")


class MySQLDialect(Dialect):
    capabilities = Capabilities(
        name="mysql",
        driver_module="MySQLdb",
        pip_extra="mysql",
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
        return [
            Column(name, db_type, self.arrow_type(db_type), nullable == "YES")
            for name, db_type, nullable in rows
        ]

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

    # ----------------------------------------------------------------- types
    def arrow_type(self, db_type: str) -> pa.DataType:
        import pyarrow as pa

        name = db_type.lower().strip()
        unsigned = "unsigned" in name
        match = _PRECISION.search(name)
        base = name.split("(")[0].split(" ")[0]
        if base in ("tinyint", "bool", "boolean") and (base != "tinyint" or name.startswith("tinyint(1)")):
            return pa.bool_()
        integers = {
            "tinyint": (pa.int8(), pa.int16()),
            "smallint": (pa.int16(), pa.int32()),
            "mediumint": (pa.int32(), pa.int32()),
            "int": (pa.int32(), pa.int64()),
            "integer": (pa.int32(), pa.int64()),
            "bigint": (pa.int64(), pa.uint64()),
            "year": (pa.int16(), pa.int16()),
        }
        if base in integers:
            return integers[base][1 if unsigned else 0]
        if base in ("decimal", "numeric", "dec", "fixed"):
            precision = int(match.group(1)) if match else 10
            scale = int(match.group(2) or 0) if match else 0
            return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        if base == "float":
            return pa.float32()
        if base in ("double", "real"):
            return pa.float64()
        if base == "datetime":
            return pa.timestamp("us")
        if base == "timestamp":
            return pa.timestamp("us", tz="UTC")
        if base == "date":
            return pa.date32()
        if base == "time":
            return pa.time64("us")
        if base in ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit"):
            return pa.binary()
        return pa.string()

    def sql_type(self, field: pa.Field, *, is_key: bool = False) -> str:
        import pyarrow as pa

        from ._arrow import is_json_field

        kind = field.type
        if pa.types.is_boolean(kind):
            return "BOOLEAN"
        if pa.types.is_integer(kind):
            sizes = {8: "TINYINT", 16: "SMALLINT", 32: "INT", 64: "BIGINT"}
            return sizes[kind.bit_width] + (" UNSIGNED" if pa.types.is_unsigned_integer(kind) else "")
        if pa.types.is_float32(kind) or pa.types.is_float16(kind):
            return "FLOAT"
        if pa.types.is_floating(kind):
            return "DOUBLE"
        if pa.types.is_decimal(kind):
            return f"DECIMAL({min(kind.precision, 65)},{min(kind.scale, 30)})"
        if pa.types.is_timestamp(kind):
            return "DATETIME(6)"
        if pa.types.is_date(kind):
            return "DATE"
        if pa.types.is_time(kind):
            return "TIME(6)"
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
            return "VARBINARY(255)" if is_key else "LONGBLOB"
        if is_json_field(field):
            return "JSON"
        return "VARCHAR(255)" if is_key else "LONGTEXT"

    def value_converter(self, column: Column) -> Any:
        import pyarrow as pa

        kind = column.arrow_type
        if pa.types.is_boolean(kind):
            return bool
        if pa.types.is_time(kind):
            return lambda v: (dt.datetime.min + v).time() if isinstance(v, dt.timedelta) else v
        if pa.types.is_string(kind):
            return lambda v: v.decode() if isinstance(v, (bytes, bytearray)) else str(v)
        if pa.types.is_binary(kind):
            return lambda v: bytes(v) if not isinstance(v, str) else v.encode()
        return None

    # ----------------------------------------------------------------- loading
    def create_staging_table(self, conn: Any, target: TableRef, columns: Sequence[str]) -> TableRef:
        """A temporary table to merge from - or the target itself while it holds no row: an initial load
        has nothing to merge with, so the rows are loaded once instead of twice."""
        probe = self.execute(conn, f"SELECT NOT EXISTS (SELECT 1 FROM {self.qualify(target)})")
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
        import pyarrow as pa

        from ._arrow import iter_nonempty, text_rows

        total = 0
        schema: pa.Schema | None = None
        handle, path = tempfile.mkstemp(prefix="sync-load-", suffix=".tsv")
        try:
            with os.fdopen(handle, "wb") as out:
                for batch in iter_nonempty(iter(batches)):
                    schema = schema or batch.schema
                    out.write(text_rows(batch, "mysql"))
                    total += batch.num_rows
            if schema is None:
                return 0
            targets, assignments = [], []
            for number, field in enumerate(schema):
                if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
                    targets.append(f"@sync_v{number}")
                    assignments.append(f"{self.quote(field.name)} = UNHEX(@sync_v{number})")
                else:
                    targets.append(self.quote(field.name))
            set_clause = f" SET {', '.join(assignments)}" if assignments else ""
            cursor = self.execute(conn, self._load_query(path, table, targets, set_clause))
            cursor.close()
            self._raise_on_warnings(conn, table)
        finally:
            os.unlink(path)
        return total

    def _load_query(self, path: str, table: TableRef, targets: list[str], set_clause: str) -> Any:
        from .types import Query

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
            column = _WARNING_COLUMN.search(message)
            row = _WARNING_ROW.search(message)
            details.append(
                f"code {code}"
                + (f" column {column.group(1)}" if column else "")
                + (f" row {row.group(1)}" if row else "")
            )
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

    def ledger_timestamp_type(self) -> str:
        return "DATETIME(6)"
