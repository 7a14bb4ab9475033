"""Oracle Database (18c+; 23ai Free in docker-compose) through python-oracledb in thin mode.

Case rules: Oracle folds unquoted names to upper case. A name written here in lower case that is a plain
identifier (``orders``, ``created_at``) therefore means Oracle's ``ORDERS`` / ``CREATED_AT``; any other
name (mixed case, spaces) is used exactly as written. Columns read back are reported the same way
(``CREATED_AT`` becomes ``created_at``), so pipelines to other databases get the usual lower-case names.
Identifiers are limited to 128 bytes and cannot contain a double quote.

Extraction runs in a ``SET TRANSACTION READ ONLY`` transaction (one consistent read point for every query),
pages with ``FETCH FIRST n ROWS ONLY`` and the expanded keyset predicate. ``datetime`` parameters are bound
as TIMESTAMP (the driver's default, DATE, would drop fractional seconds). Loads array-bind rows with
``executemany`` into a private temporary table (``ORA$PTT_...``, dropped at commit, created without an
implicit commit), then ``MERGE`` updates only rows that differ (``DECODE`` treats NULLs as equal; LOB
columns are compared with ``DBMS_LOB.COMPARE``). The session time zone is UTC.

Column types and name/value conversions live in :mod:`.oracle_types`; this module keeps
connections, introspection, SQL shape and loading, and re-exports the conversion helpers.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

from ._ledger import lock_digest
from .base import Capabilities
from .oracle_types import OracleTypes, from_oracle_name, oracle_value, to_oracle_name
from .types import Binder, Column, LoadCounts, Query, TableRef

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.core.partitions import KeySlice

    from .connection import ConnectionInfo

_NOT_NAME = re.compile(r"[^A-Z0-9_]")
_CURRENT_SCHEMA = "SYS_CONTEXT('USERENV', 'CURRENT_SCHEMA')"
_LOB_TYPES = ("CLOB", "NCLOB", "BLOB")
PRIVATE_TEMP_PREFIX = "ORA$PTT_"


class OracleDialect(OracleTypes):
    capabilities = Capabilities(
        name="oracle",
        driver_module="oracledb",
        pip_extra="oracle",
        param_style="named",
        bulk_load="executemany_array_binding",
        upsert_style="merge",
        max_identifier_length=128,
        row_value_comparison=False,
        transactional_ddl=False,
        supports_schemas=True,
        native_json=False,
        target_lock="dbms_lock",
        target_lock_session=True,
    )

    # ----------------------------------------------------------------- connections
    def connect(self, info: ConnectionInfo) -> Any:
        from . import require_driver

        oracledb: Any = require_driver("oracle")
        extra = info.extra
        if extra.get("dsn"):
            conn = oracledb.connect(user=info.login, password=info.password, dsn=extra["dsn"])
        else:
            conn = oracledb.connect(
                user=info.login,
                password=info.password,
                host=info.host or "localhost",
                port=int(info.port or 1521),
                sid=extra.get("sid"),
                service_name=extra.get("service_name") or (None if extra.get("sid") else info.database),
            )
        cursor = conn.cursor()
        cursor.execute("ALTER SESSION SET TIME_ZONE = 'UTC'")
        cursor.close()
        return conn

    def begin_snapshot(self, conn: Any) -> None:
        conn.rollback()
        self.execute(conn, "SET TRANSACTION READ ONLY").close()

    def _bound_cursor(self, conn: Any, params: Any) -> tuple[Any, Any]:
        """A cursor with TIMESTAMP input sizes for datetime parameters, and the converted parameters."""
        cursor = conn.cursor()
        if not params:
            return cursor, None
        import oracledb

        if isinstance(params, dict):
            converted: Any = {name: oracle_value(value) for name, value in params.items()}
            sizes = {
                n: oracledb.DB_TYPE_TIMESTAMP for n, v in converted.items() if isinstance(v, dt.datetime)
            }
            if sizes:
                cursor.setinputsizes(**sizes)
        else:
            converted = [oracle_value(value) for value in params]
            if any(isinstance(v, dt.datetime) for v in converted):
                cursor.setinputsizes(
                    *[oracledb.DB_TYPE_TIMESTAMP if isinstance(v, dt.datetime) else None for v in converted]
                )
        return cursor, converted

    def execute(self, conn: Any, query: Query | str) -> Any:
        if isinstance(query, str):
            query = Query(query)
        cursor, params = self._bound_cursor(conn, query.params)
        cursor.execute(query.sql, params)
        return cursor

    def read_batches(
        self, conn: Any, query: Query, columns: Sequence[Column], batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        from ._arrow import rows_to_batch

        cursor, params = self._bound_cursor(conn, query.params)
        cursor.arraysize = batch_size
        cursor.prefetchrows = batch_size + 1
        try:
            # LOBs as str/bytes and NUMBER as Decimal, so nothing is cut to a float on the way.
            cursor.execute(query.sql, params, fetch_lobs=False, fetch_decimals=True)
            while rows := cursor.fetchmany(batch_size):
                yield rows_to_batch(rows, columns, self.value_converter)
        finally:
            cursor.close()

    # ----------------------------------------------------------------- identifiers
    def quote(self, identifier: str) -> str:
        if not identifier:
            raise ValueError("an empty identifier cannot be quoted")
        name = to_oracle_name(identifier)
        if '"' in name or "\x00" in name:
            raise TerminalError(
                f"Oracle identifiers cannot contain a double quote: {identifier!r}; rename it"
            )
        if len(name.encode()) > self.capabilities.max_identifier_length:
            raise TerminalError(
                f"Oracle identifier {identifier[:40]!r}... is longer than 128 bytes; rename it with a "
                "schema_map step"
            )
        return f'"{name}"'

    def _schema_expr(self, table: TableRef, bind: Binder) -> str:
        return bind(to_oracle_name(table.schema)) if table.schema else _CURRENT_SCHEMA

    def _dictionary_query(self, sql: str, table: TableRef) -> Query:
        """Bind ``{owner}`` and ``{name}`` in a data-dictionary query."""
        bind = Binder(self.capabilities.param_style)
        owner = self._schema_expr(table, bind)
        return bind.query(sql.format(owner=owner, name=bind(to_oracle_name(table.name))))

    # ----------------------------------------------------------------- introspection
    def table_exists(self, conn: Any, table: TableRef) -> bool:
        query = self._dictionary_query(
            "SELECT COUNT(*) FROM all_objects WHERE owner = {owner} AND object_name = {name} "
            "AND object_type IN ('TABLE', 'VIEW')",
            table,
        )
        return bool(self.scalar(conn, query))

    def get_columns(self, conn: Any, table: TableRef) -> list[Column]:
        query = self._dictionary_query(
            "SELECT column_name, data_type, data_precision, data_scale, char_length, nullable "
            "FROM all_tab_columns WHERE owner = {owner} AND table_name = {name} ORDER BY column_id",
            table,
        )
        cursor = self.execute(conn, query)
        rows = cursor.fetchall()
        cursor.close()
        if not rows:
            raise TerminalError(f"Oracle table {table} does not exist or is not visible to this user")
        columns = []
        for name, data_type, precision, scale, char_length, nullable in rows:
            kind = str(data_type).upper()
            if kind == "NUMBER" and (precision is not None or scale is not None):
                kind = f"NUMBER({precision if precision is not None else 38},{scale or 0})"
            elif kind in ("VARCHAR2", "NVARCHAR2", "CHAR", "NCHAR", "RAW") and char_length:
                kind = f"{kind}({char_length})"
            columns.append(Column(from_oracle_name(name), kind, self.arrow_type(kind), nullable == "Y"))
        return columns

    def get_primary_key(self, conn: Any, table: TableRef) -> list[str]:
        query = self._dictionary_query(
            "SELECT cc.column_name FROM all_constraints c JOIN all_cons_columns cc ON cc.owner = c.owner "
            "AND cc.constraint_name = c.constraint_name WHERE c.constraint_type = 'P' AND c.owner = {owner} "
            "AND c.table_name = {name} ORDER BY cc.position",
            table,
        )
        cursor = self.execute(conn, query)
        names = [from_oracle_name(row[0]) for row in cursor.fetchall()]
        cursor.close()
        return names

    # ----------------------------------------------------------------- DDL and SQL shape
    add_column_clause = "ADD"

    def limit_sql(self, sql: str, limit: int) -> str:
        return f"{sql} FETCH FIRST {int(limit)} ROWS ONLY"

    def drop_table_sql(self, table: TableRef) -> str:
        """Drop the table if it exists (a PL/SQL block: ``DROP TABLE IF EXISTS`` needs Oracle 23ai)."""
        statement = f"DROP TABLE {self.qualify(table)} PURGE".replace("'", "''")
        return (
            f"BEGIN EXECUTE IMMEDIATE '{statement}'; EXCEPTION WHEN OTHERS THEN "
            "IF SQLCODE != -942 THEN RAISE; END IF; END;"
        )

    def swap_tables_sql(self, target: TableRef, loaded: TableRef, target_exists: bool = True) -> list[str]:
        """Oracle DDL commits and cannot swap two names in one statement: the old table is renamed away
        and the loaded one renamed in right after, so readers may miss the table for that instant."""
        if not target_exists:
            return [self.rename_table_sql(loaded, target.name)]
        retired = self.helper_table(target, "__sync_old")
        return [
            self.drop_table_sql(retired),
            self.rename_table_sql(target, retired.name),
            self.rename_table_sql(loaded, target.name),
            self.drop_table_sql(retired),
        ]

    # ----------------------------------------------------------------- loading
    def staging_name(self, target: TableRef) -> TableRef:
        cleaned = _NOT_NAME.sub("_", to_oracle_name(target.name).upper())
        room = self.capabilities.max_identifier_length - len(PRIVATE_TEMP_PREFIX) - len("_STAGE")
        return TableRef(f"{PRIVATE_TEMP_PREFIX}{cleaned[:room]}_STAGE")

    def staging_table_sql(self, staging: TableRef, target: TableRef, columns: Sequence[str]) -> str:
        return (
            f"CREATE PRIVATE TEMPORARY TABLE {self.qualify(staging)} ON COMMIT DROP DEFINITION AS "
            f"SELECT {self.column_list(columns)} FROM {self.qualify(target)} WHERE 1 = 0"
        )

    def byte_order_sql(self, column: str) -> str:
        return f"NLSSORT({self.quote(column)}, 'NLS_SORT=BINARY')"

    def create_staging_table(
        self, conn: Any, target: TableRef, columns: Sequence[str], within: KeySlice | None = None
    ) -> TableRef:
        """A private temporary table: session-private, dropped at the end of the transaction, and (unlike
        other DDL) created without committing the caller's transaction."""
        staging = self.staging_name(target)
        self.execute(conn, self.staging_table_sql(staging, target, columns)).close()
        return staging

    def insert_sql(self, table: TableRef, columns: Sequence[str]) -> str:
        binds = ", ".join(f":c{number}" for number in range(1, len(columns) + 1))
        return f"INSERT INTO {self.qualify(table)} ({self.column_list(columns)}) VALUES ({binds})"

    def bulk_insert(self, conn: Any, table: TableRef, batches: Iterable[pa.RecordBatch]) -> int:
        import oracledb
        import pyarrow as pa

        from ._arrow import batch_rows

        total = 0
        cursor = conn.cursor()
        try:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                sizes = [
                    oracledb.DB_TYPE_TIMESTAMP if pa.types.is_timestamp(t) else None
                    for t in batch.schema.types
                ]
                if any(sizes):
                    cursor.setinputsizes(*sizes)
                # Positional binds: one round trip per batch with every column bound as an array.
                cursor.executemany(
                    self.insert_sql(table, batch.schema.names), batch_rows(batch, self.param_converter)
                )
                total += batch.num_rows
        finally:
            cursor.close()
        return total

    def merge_sql(
        self,
        staging: TableRef,
        target: TableRef,
        columns: Sequence[str],
        keys: Sequence[str],
        lob_columns: Iterable[str] = (),
    ) -> str:
        """``MERGE`` from staging; ``lob_columns`` are compared by DBMS_LOB.COMPARE (DECODE rejects LOBs)."""
        lobs = set(lob_columns)
        others = [c for c in columns if c not in keys]
        on = " AND ".join(f"t.{self.quote(k)} = s.{self.quote(k)}" for k in keys)
        insert = (
            f"WHEN NOT MATCHED THEN INSERT ({self.column_list(columns)}) "
            f"VALUES ({self.column_list(columns, 's.')})"
        )
        head = f"MERGE INTO {self.qualify(target)} t USING {self.qualify(staging)} s ON ({on}) "
        if not others:
            return head + insert
        differs = []
        for column in others:
            t_col, s_col = f"t.{self.quote(column)}", f"s.{self.quote(column)}"
            if column in lobs:
                differs.append(
                    f"({t_col} IS NULL AND {s_col} IS NOT NULL) OR ({t_col} IS NOT NULL AND {s_col} "
                    f"IS NULL) OR DBMS_LOB.COMPARE({t_col}, {s_col}) <> 0"
                )
            else:
                differs.append(f"DECODE({t_col}, {s_col}, 0, 1) = 1")
        assignments = ", ".join(f"t.{self.quote(c)} = s.{self.quote(c)}" for c in others)
        return f"{head}WHEN MATCHED THEN UPDATE SET {assignments} WHERE {' OR '.join(differs)} {insert}"

    def upsert_sql(
        self, staging: TableRef, target: TableRef, columns: Sequence[str], keys: Sequence[str]
    ) -> str:
        return self.merge_sql(staging, target, columns, keys)

    def upsert(
        self,
        conn: Any,
        staging: TableRef,
        target: TableRef,
        columns: Sequence[str],
        keys: Sequence[str],
        staged_rows: int,
    ) -> LoadCounts:
        """MERGE with LOB columns of the target compared through DBMS_LOB."""
        lobs = [c.name for c in self.get_columns(conn, target) if c.db_type.split("(")[0] in _LOB_TYPES]
        inserted = int(self.scalar(conn, self.new_keys_count_query(staging, target, keys)) or 0)
        cursor = self.execute(conn, self.merge_sql(staging, target, columns, keys, lobs))
        updated = self.updated_from_rowcount(cursor.rowcount, inserted)
        cursor.close()
        return LoadCounts(
            inserted=inserted, updated=updated, unchanged=max(staged_rows - inserted - updated, 0)
        )

    # ----------------------------------------------------------------- shared targets
    current_schema_sql = "SELECT SYS_CONTEXT('USERENV', 'CURRENT_SCHEMA') FROM DUAL"

    def target_lock_query(self, identity: str) -> Query:
        # DDL commits implicitly here, so the lock belongs to the session (release_on_commit FALSE) and is
        # released when the load's connection closes. Needs EXECUTE on DBMS_LOCK; 0 = granted, 4 = held.
        return Query(
            "DECLARE granted INTEGER; BEGIN granted := DBMS_LOCK.REQUEST(id => :lock_id, lockmode => "
            "DBMS_LOCK.X_MODE, timeout => DBMS_LOCK.MAXWAIT, release_on_commit => FALSE); IF granted NOT "
            "IN (0, 4) THEN RAISE_APPLICATION_ERROR(-20001, 'target lock not granted: ' || granted); END IF; "
            "END;",
            {"lock_id": int.from_bytes(lock_digest(identity)[:4], "big") % 1_073_741_824},
        )

    # ----------------------------------------------------------------- append ledger
    def ledger_table_sql(self, ledger: TableRef) -> str:
        return super().ledger_table_sql(ledger).replace(" BIGINT ", " NUMBER(19) ")

    def ledger_text_type(self) -> str:
        return "NVARCHAR2(180)"

    def ledger_timestamp_type(self) -> str:
        return "TIMESTAMP(6)"


__all__ = ["PRIVATE_TEMP_PREFIX", "OracleDialect", "from_oracle_name", "oracle_value", "to_oracle_name"]
