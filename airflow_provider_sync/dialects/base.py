"""The contract every database dialect implements, plus the SQL that is standard enough to share.

A dialect holds *all* per-database SQL: identifier quoting, introspection, the high-water-mark and keyset
queries, Arrow <-> SQL type mapping, DDL, the fastest bulk path, upsert, table swap and the append ledger.
Operators and the pipeline never branch on the database name; they call these methods.

Conventions:
  * Methods ending in ``_sql`` return SQL text without parameters; methods ending in ``_query`` return a
    :class:`Query` (text + bound values in the driver's parameter style). Run both through :meth:`execute`.
  * Methods taking ``conn`` use a DB-API connection opened by :meth:`connect` (autocommit off); they never
    commit unless their docstring says so - transactions belong to the caller.
  * Identifiers are always quoted (embedded quote characters doubled), so reserved words, mixed case and
    spaces in names are safe.

:class:`Capabilities` lives in :mod:`.capabilities` and is re-exported here.
"""

from __future__ import annotations

import abc
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_sync.errors import SyncError, TerminalError, TransientError

from ._keyset import KeysetSQL
from ._ledger import LEDGER_COLUMNS, LedgerSQL
from ._names import SQLNames
from .capabilities import Capabilities
from .dml import DMLSQL
from .types import Binder, Column, KeysetBounds, LoadCounts, ParamStyle, Query, TableRef

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.core.partitions import KeySlice

    from .connection import ConnectionInfo
    from .declared import DeclaredType

log = logging.getLogger(__name__)
# A value quoted after a colon, as drivers print offending input: `invalid input syntax: "abc"`.
_QUOTED_VALUE = re.compile(r""":\s*(["'`]).*?\1""")

__all__ = [
    "LEDGER_COLUMNS",
    "Binder",
    "Capabilities",
    "Column",
    "Dialect",
    "KeysetBounds",
    "LoadCounts",
    "ParamStyle",
    "Query",
    "SQLNames",
    "TableRef",
]


class Dialect(KeysetSQL, LedgerSQL, DMLSQL, abc.ABC):
    """Per-database SQL and I/O. Subclasses set :attr:`capabilities` and implement the abstract methods."""

    capabilities: ClassVar[Capabilities]

    # Identifier quoting (quote, qualify, column_list, helper_table) comes from SQLNames, the keyset and
    # high-water-mark SQL from KeysetSQL, the append ledger from LedgerSQL, plain select / insert / delete /
    # update / add-column statements and savepoints from DMLSQL.

    # ----------------------------------------------------------------- connections and transactions
    @abc.abstractmethod
    def connect(self, info: ConnectionInfo) -> Any:
        """Open a DB-API connection with autocommit off and the session time zone set to UTC.

        Raise :class:`~airflow_provider_sync.errors.MissingDriverError` when the driver is not installed.
        """

    @abc.abstractmethod
    def begin_snapshot(self, conn: Any) -> None:
        """Start a transaction (read-only where the database allows it) in which every following query
        sees one consistent snapshot (REPEATABLE READ or stronger). Extraction takes the high-water mark
        and reads rows inside it. The connection is used for nothing else afterwards."""

    def begin_write(self, conn: Any) -> None:
        """Start the write transaction of a load. DB-API drivers open one implicitly; dialects whose
        driver runs in autocommit mode issue an explicit BEGIN."""

    def execute(self, conn: Any, query: Query | str) -> Any:
        """Run one statement and return the driver cursor (for ``rowcount`` / ``fetch*``)."""
        if isinstance(query, str):
            query = Query(query)
        cursor = conn.cursor()
        cursor.execute(query.sql, self.bind_params(query.params))
        return cursor

    def bind_value(self, value: Any) -> Any:
        """One query parameter as the driver should receive it (e.g. aware datetimes in UTC)."""
        return value

    def bind_params(self, params: list[Any] | dict[str, Any]) -> list[Any] | dict[str, Any]:
        if isinstance(params, dict):
            return {name: self.bind_value(value) for name, value in params.items()}
        return [self.bind_value(value) for value in params]

    def scalar(self, conn: Any, query: Query | str) -> Any:
        """Run a query and return the first column of its first row (None when there is no row)."""
        cursor = self.execute(conn, query)
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else row[0]

    def translate_error(self, exc: BaseException) -> SyncError | None:
        """A :class:`SyncError` for a driver error, or None for anything else.

        The message keeps the driver's first line with quoted values removed (drivers quote the offending
        value, which may be personal data), so it can be logged. :meth:`is_transient` decides between
        :class:`TransientError` (retry) and :class:`TerminalError`."""
        if not type(exc).__module__.split(".")[0].lstrip("_").startswith(self.driver_modules()):
            return None
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        safe = _QUOTED_VALUE.sub(": <value>", first_line)
        kind = TransientError if self.is_transient(exc) else TerminalError
        return kind(f"{self.capabilities.name} error ({type(exc).__name__}): {safe}")

    def driver_modules(self) -> tuple[str, ...]:
        """Module name prefixes of the driver's exception classes."""
        return (self.capabilities.driver_module.lstrip("_"),)

    def is_transient(self, exc: BaseException) -> bool:
        """True when retrying may succeed (lost connection, deadlock, lock timeout)."""
        return type(exc).__name__ in ("OperationalError", "InterfaceError")

    def is_unique_violation(self, exc: BaseException) -> bool:
        """True when ``exc`` is the driver's unique/primary-key violation."""
        return type(exc).__name__ in ("IntegrityError", "UniqueViolation")

    # ----------------------------------------------------------------- introspection
    def table_exists(self, conn: Any, table: TableRef) -> bool:
        """True when ``table`` exists (views count)."""
        bind = Binder(self.capabilities.param_style)
        sql = (
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = "
            f"{bind(table.name)} AND table_schema = {self._schema_expr(table, bind)}"
        )
        return bool(self.scalar(conn, bind.query(sql)))

    def create_table_if_missing(self, conn: Any, table: TableRef, schema: pa.Schema) -> bool:
        """Create a bookkeeping table (audit, quarantine) in its own committed transaction when it does not
        exist; True when this call created it. Safe against another task creating it at the same moment."""
        if self.table_exists(conn, table):
            return False
        try:
            self.begin_write(conn)
            self.execute(conn, self.create_table_sql(table, schema)).close()
            conn.commit()
        except Exception:
            conn.rollback()
            if self.table_exists(conn, table):
                return False
            raise
        log.info("Created table %s", table)
        return True

    def _schema_expr(self, table: TableRef, bind: Binder) -> str:
        """SQL for the table's schema, defaulting to the session's current schema."""
        return bind(table.schema) if table.schema else "CURRENT_SCHEMA"

    @abc.abstractmethod
    def get_columns(self, conn: Any, table: TableRef) -> list[Column]:
        """The table's columns in ordinal order, with declared type and the Arrow type they read as.
        Raise :class:`~airflow_provider_sync.errors.TerminalError` naming the table when it does not exist."""

    def query_columns(self, conn: Any, sql: str) -> list[Column]:
        """Columns of an arbitrary SELECT, from the driver's cursor description. Dialects whose drivers
        report type codes override this; the default reads one row and infers Arrow types from values."""
        import pyarrow as pa

        cursor = self.execute(conn, f"SELECT * FROM ({sql}) sync_probe WHERE 1 = 0")
        names = [d[0] for d in cursor.description]
        cursor.close()
        return [Column(name, "unknown", pa.string()) for name in names]

    @abc.abstractmethod
    def get_primary_key(self, conn: Any, table: TableRef) -> list[str]:
        """Primary-key column names in key order (empty when the table has none)."""

    def estimate_rows(self, conn: Any, table: TableRef) -> int | None:
        """The planner's row-count estimate for progress reporting (cheap, may be stale), or None."""
        return None

    def estimate_query_rows(self, conn: Any, query: Query) -> int | None:
        """The planner's estimate of how many rows ``query`` returns, without running it (progress
        percent and ETA of a range read), or None where the database cannot tell cheaply."""
        return None

    def get_unique_keys(self, conn: Any, table: TableRef) -> list[list[str]]:
        """Column sets with a primary-key or unique constraint (an upsert needs one on its keys).
        Default: the primary key only."""
        primary_key = self.get_primary_key(conn, table)
        return [primary_key] if primary_key else []

    @abc.abstractmethod
    def arrow_type(self, db_type: str) -> pa.DataType:
        """Map a declared column type (as :meth:`get_columns` reports it, e.g. ``numeric(12,2)``) to Arrow.
        Decimals map to ``decimal128``, timestamps keep microseconds (tz-aware types get ``tz="UTC"``),
        JSON maps to ``string``; unknown types map to ``string``."""

    def declared_type(self, db_type: str) -> DeclaredType | None:
        """The portable descriptor of a declared type (``character(10)`` -> char, length 10) that the staged
        schema carries to the target; None when the Arrow type says enough. See ``declared.py``."""
        from .declared import parse_declared

        return parse_declared(db_type)

    def declared_sql(self, declared: DeclaredType, field: pa.Field, *, is_key: bool = False) -> str | None:
        """This database's column type for a source column's declared type, or None to fall back to the
        Arrow-type mapping (no such type here, or a size the database cannot hold)."""
        return None

    def sql_type(self, field: pa.Field, *, is_key: bool = False) -> str:
        """The column type used to create a target column for an Arrow field. ``is_key`` asks for a type
        usable in a primary key (bounded length where the database needs it). A field carrying the
        source's declared type (``declared.py``) gets :meth:`declared_sql` when that is not None, any
        other field :meth:`arrow_sql_type`."""
        from .declared import declared_sql

        declared = declared_sql(self, field, is_key=is_key)
        return declared if declared is not None else self.arrow_sql_type(field, is_key=is_key)

    @abc.abstractmethod
    def arrow_sql_type(self, field: pa.Field, *, is_key: bool = False) -> str:
        """The column type for an Arrow field by its Arrow type alone (see :meth:`sql_type`)."""

    # ----------------------------------------------------------------- reading
    def read_batches(
        self, conn: Any, query: Query, columns: Sequence[Column], batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        """Run ``query`` and yield Arrow record batches of at most ``batch_size`` rows, holding only one
        batch in memory (server-side cursor / ``fetchmany``). ``columns`` give names and Arrow types."""
        from ._arrow import rows_to_batch

        cursor = self.streaming_cursor(conn)
        try:
            cursor.execute(query.sql, self.bind_params(query.params))
            while rows := cursor.fetchmany(batch_size):
                yield rows_to_batch(rows, columns, self.value_converter)
        finally:
            cursor.close()

    def cursor_bound_renderer(self, conn: Any, source: TableRef | str, column: Column) -> Any:
        """A function spelling cursor bounds as ``column`` stores its values (databases keeping timestamps
        as text), or None when bound values compare natively."""
        return None

    def streaming_cursor(self, conn: Any) -> Any:
        """A cursor that streams results instead of buffering them client-side."""
        return conn.cursor()

    def value_converter(self, column: Column) -> Any:
        """A function turning one driver value of ``column`` into what Arrow expects, or None if the driver
        already returns the right Python type."""
        return None

    # ----------------------------------------------------------------- DDL
    def create_table_sql(self, table: TableRef, schema: pa.Schema, primary_key: Sequence[str] = ()) -> str:
        """``CREATE TABLE`` with one column per Arrow field and a primary key on ``primary_key``."""
        keys = set(primary_key)
        lines = [self.column_sql(field, is_key=field.name in keys) for field in schema]
        if primary_key:
            lines.append(f"PRIMARY KEY ({self.column_list(primary_key)})")
        return f"CREATE TABLE {self.qualify(table)} (\n  " + ",\n  ".join(lines) + "\n)"

    def create_like_sql(self, existing: TableRef, new: TableRef) -> str | None:
        """``CREATE TABLE new`` with the columns, keys and indexes of ``existing`` (used by ``replace`` so
        the swapped-in table keeps the target's definition), or None where the database cannot."""
        return None

    def drop_table_sql(self, table: TableRef) -> str:
        return f"DROP TABLE IF EXISTS {self.qualify(table)}"

    def rename_table_sql(self, table: TableRef, new_name: str) -> str:
        """Rename a table within its schema."""
        return f"ALTER TABLE {self.qualify(table)} RENAME TO {self.quote(new_name)}"

    def swap_tables_sql(self, target: TableRef, loaded: TableRef, target_exists: bool = True) -> list[str]:
        """Statements that replace ``target`` by the fully loaded ``loaded`` table atomically (in the
        caller's transaction where DDL is transactional) and drop the old data."""
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
    def create_staging_table(
        self, conn: Any, target: TableRef, columns: Sequence[str], within: KeySlice | None = None
    ) -> TableRef:
        """Create an empty session-private table with the target's column types for ``columns`` and return
        it. It disappears with the session; the caller's transaction is not committed."""
        staging = self.helper_table(TableRef(target.name), "__sync_stage")
        self.execute(conn, f"DROP TABLE IF EXISTS {self.qualify(staging)}").close()
        self.execute(
            conn,
            f"CREATE TEMPORARY TABLE {self.qualify(staging)} AS "
            f"SELECT {self.column_list(columns)} FROM {self.qualify(target)} WHERE 1 = 0",
        ).close()
        return staging

    def bulk_insert(self, conn: Any, table: TableRef, batches: Iterable[pa.RecordBatch]) -> int:
        """Insert every row of ``batches`` into ``table`` (columns by field name) by the fastest path the
        database offers; returns the row count. Default: ``executemany`` per batch."""
        from ._arrow import batch_rows

        total = 0
        for batch in batches:
            if batch.num_rows == 0:
                continue
            bind = Binder(self.capabilities.param_style)
            placeholders = ", ".join(bind(None) for _ in batch.schema.names)
            sql = (
                f"INSERT INTO {self.qualify(table)} ({self.column_list(batch.schema.names)}) "
                f"VALUES ({placeholders})"
            )
            cursor = conn.cursor()
            cursor.executemany(sql, batch_rows(batch, self.param_converter))
            cursor.close()
            total += batch.num_rows
        return total

    def param_converter(self, arrow_type: pa.DataType) -> Any:
        """A function turning one Python value of ``arrow_type`` into a driver parameter, or None."""
        return None

    def new_keys_count_query(self, staging: TableRef, target: TableRef, keys: Sequence[str]) -> Query:
        """Count staged rows whose key is not yet in the target (the rows an upsert will insert)."""
        join = " AND ".join(f"t.{self.quote(k)} = s.{self.quote(k)}" for k in keys)
        return Query(
            f"SELECT COUNT(*) FROM {self.qualify(staging)} s WHERE NOT EXISTS "
            f"(SELECT 1 FROM {self.qualify(target)} t WHERE {join})"
        )

    @abc.abstractmethod
    def upsert_sql(
        self, staging: TableRef, target: TableRef, columns: Sequence[str], keys: Sequence[str]
    ) -> str:
        """Insert staged rows into the target, updating rows whose key exists - but only when a non-key
        value actually differs, so unchanged rows are not rewritten."""

    def on_conflict_upsert_sql(
        self,
        staging: TableRef,
        target: TableRef,
        columns: Sequence[str],
        keys: Sequence[str],
        changed: str,
    ) -> str:
        """``INSERT ... ON CONFLICT (keys) DO UPDATE SET ... WHERE <changed>`` (PostgreSQL, SQLite).
        ``changed`` is the SQL condition (over ``t`` = target row, ``excluded`` = new row) that is true
        when a non-key value differs."""
        cols = self.column_list(columns)
        others = [c for c in columns if c not in keys]
        head = (
            f"INSERT INTO {self.qualify(target)} AS t ({cols}) SELECT {cols} FROM {self.qualify(staging)} "
            f"WHERE true ON CONFLICT ({self.column_list(keys)}) DO "
        )
        if not others:
            return head + "NOTHING"
        assignments = ", ".join(f"{self.quote(c)} = excluded.{self.quote(c)}" for c in others)
        return head + f"UPDATE SET {assignments} WHERE {changed}"

    def upsert(
        self,
        conn: Any,
        staging: TableRef,
        target: TableRef,
        columns: Sequence[str],
        keys: Sequence[str],
        staged_rows: int,
    ) -> LoadCounts:
        """Run :meth:`upsert_sql` and work out inserted / updated / unchanged counts."""
        if staging == target:  # create_staging_table loaded the rows straight into the empty target
            return LoadCounts(inserted=staged_rows)
        inserted = int(self.scalar(conn, self.new_keys_count_query(staging, target, keys)) or 0)
        cursor = self.execute(conn, self.upsert_sql(staging, target, columns, keys))
        affected = cursor.rowcount
        cursor.close()
        updated = self.updated_from_rowcount(affected, inserted)
        return LoadCounts(
            inserted=inserted, updated=updated, unchanged=max(staged_rows - inserted - updated, 0)
        )

    def updated_from_rowcount(self, rowcount: int, inserted: int) -> int:
        """Rows updated by the upsert statement, given its driver ``rowcount`` and the inserted count."""
        return max(rowcount - inserted, 0)

    def insert_select_sql(self, source: TableRef, target: TableRef, columns: Sequence[str]) -> str:
        cols = self.column_list(columns)
        return f"INSERT INTO {self.qualify(target)} ({cols}) SELECT {cols} FROM {self.qualify(source)}"
