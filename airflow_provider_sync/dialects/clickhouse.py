"""ClickHouse through clickhouse-connect (HTTP), or chDB in-process with a ``chdb:///data/dir`` DSN.

ClickHouse has no multi-statement transactions, so the correctness contract rests on idempotent writes:

* ``upsert``: targets are ``ReplacingMergeTree([version])`` ordered by the keys. Re-loading a row adds a
  newer version that background merges collapse; read with ``FINAL`` to see one row per key at once.
* ``replace``: the new table is loaded completely, then ``EXCHANGE TABLES`` swaps it in atomically.
* ``append``: the ledger is a ``ReplacingMergeTree`` keyed on the range. Its row is held back until
  ``commit`` (so it is written only after the data), and the data inserts that follow it carry an
  ``insert_deduplication_token`` derived from the range; tables created here keep a deduplication window,
  so a retried range that failed half-way re-inserts nothing twice. (Replicated tables deduplicate by
  default; for an existing non-replicated table run ``ALTER TABLE t MODIFY SETTING
  non_replicated_deduplication_window = 1000``.)

Connection: host/port/login/password/database of the Airflow connection (HTTP port 8123 by default);
extra keys ``dsn`` (used as-is, e.g. ``chdb:///var/lib/chdb``), ``secure``, ``interface`` and ``settings``.

Column types live in :mod:`.clickhouse_types`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

from .base import Capabilities
from .clickhouse_connection import ClickHouseConnection, LedgerInsert, bind_values
from .clickhouse_layout import ClickHouseTableOptions, partition_columns
from .clickhouse_types import ClickHouseTypes
from .types import Binder, Column, Query, TableRef

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.core.partitions import KeySlice

    from .connection import ConnectionInfo

DEDUPLICATION_WINDOW = 1000
_READ_SETTINGS = {
    "output_format_arrow_string_as_string": 1,
    "output_format_arrow_low_cardinality_as_dictionary": 0,
}


class ClickHouseDialect(ClickHouseTypes):
    capabilities = Capabilities(
        name="clickhouse",
        soft_delete="marker_column",
        driver_module="clickhouse_connect",
        pip_extra="clickhouse",
        param_style="pyformat",
        bulk_load="insert_arrow",
        upsert_style="replacing_engine",
        max_identifier_length=200,
        # The expanded OR/AND form keeps the leading cursor range visible to the primary-key index.
        row_value_comparison=False,
        transactional_ddl=False,
        # No lock to take: concurrent loads of one table are only kept apart by the owners claim (which
        # two first loads at the same moment can both pass) and, for append, by the ledger.
        target_lock="none",
    )

    # ----------------------------------------------------------------- connections
    def connect(self, info: ConnectionInfo) -> ClickHouseConnection:
        from . import require_driver

        clickhouse_connect: Any = require_driver("clickhouse")
        extra = dict(info.extra)
        settings = {"session_timezone": "UTC", **extra.pop("settings", {})}
        if extra.get("dsn"):
            client = clickhouse_connect.get_client(dsn=extra["dsn"], settings=settings)
        else:
            client = clickhouse_connect.get_client(
                host=info.host or "localhost",
                port=info.port,
                username=info.login or "default",
                password=info.password or "",
                database=info.database,
                secure=str(extra.get("secure", "")).lower() in ("1", "true", "yes"),
                interface=extra.get("interface"),
                settings=settings,
            )
        return ClickHouseConnection(client)

    def begin_snapshot(self, conn: Any) -> None:
        """ClickHouse has no multi-query snapshot. Extraction stays correct without one: the upper bound
        (high-water mark) excludes rows inserted after it was taken, and merges only drop superseded
        versions of a key, whose newest version is still read."""

    def set_insert_scope(self, conn: ClickHouseConnection, scope: str) -> None:
        """Name the unit of work the next inserts belong to (e.g. ``pipeline:table:range_start:range_end``).
        Each insert then carries the token ``scope:n``, so re-running the same scope after a failure skips
        the batches ClickHouse already stored. Cleared by ``commit``/``rollback``."""
        conn.insert_scope = scope
        conn.inserts_in_scope = 0

    def is_unique_violation(self, exc: BaseException) -> bool:
        return False

    def execute(self, conn: Any, query: Query | str) -> Any:
        if isinstance(query, LedgerInsert):
            # Written at commit, after the data; the data inserts until then are named after the range.
            conn.pending_ledger_rows.append(query)
            self.set_insert_scope(conn, query.scope)
            return conn.cursor()
        return super().execute(conn, query)

    def query_columns(self, conn: Any, sql: str) -> list[Column]:
        cursor = self.execute(conn, f"DESCRIBE TABLE ({sql})")
        rows = cursor.fetchall()
        return [Column(row[0], row[1], self.arrow_type(row[1]), "Nullable(" in row[1]) for row in rows]

    # ----------------------------------------------------------------- identifiers and introspection
    def quote(self, identifier: str) -> str:
        # ClickHouse processes backslash escapes inside quoted identifiers.
        return super().quote(identifier.replace("\\", "\\\\"))

    def _schema_expr(self, table: TableRef, bind: Binder) -> str:
        return bind(table.schema) if table.schema else "currentDatabase()"

    def get_columns(self, conn: Any, table: TableRef) -> list[Column]:
        bind = Binder(self.capabilities.param_style)
        sql = (
            f"SELECT name, type FROM system.columns WHERE database = {self._schema_expr(table, bind)} "
            f"AND table = {bind(table.name)} ORDER BY position"
        )
        cursor = self.execute(conn, bind.query(sql))
        rows = cursor.fetchall()
        if not rows:
            raise TerminalError(f"ClickHouse table {table} does not exist or has no columns")
        return [Column(name, kind, self.arrow_type(kind), "Nullable(" in kind) for name, kind in rows]

    def get_primary_key(self, conn: Any, table: TableRef) -> list[str]:
        bind = Binder(self.capabilities.param_style)
        sql = (
            f"SELECT primary_key FROM system.tables WHERE database = {self._schema_expr(table, bind)} "
            f"AND name = {bind(table.name)}"
        )
        key = (self.scalar(conn, bind.query(sql)) or "").strip()
        if key.startswith("(") and key.endswith(")"):
            key = key[1:-1]
        return [part.strip().strip('`"') for part in key.split(",") if part.strip()]

    # ----------------------------------------------------------------- DDL
    def create_table_sql(
        self,
        table: TableRef,
        schema: pa.Schema,
        primary_key: Sequence[str] = (),
        options: ClickHouseTableOptions | None = None,
    ) -> str:
        """``CREATE TABLE ... ENGINE = [Replacing]MergeTree ORDER BY keys [PARTITION BY ...]``."""
        options = options or ClickHouseTableOptions()
        try:
            partition = partition_columns(options.partition_by) if options.partition_by else []
        except ValueError as exc:
            raise TerminalError(str(exc)) from None
        names = set(schema.names)
        unknown = [
            c
            for c in (*primary_key, *options.low_cardinality, options.version_column, *partition)
            if c and c not in names
        ]
        if unknown:
            raise TerminalError(
                f"ClickHouse table {table}: columns {', '.join(unknown)} are not among the loaded columns "
                f"({', '.join(schema.names)}); fix keys / version_column / low_cardinality / partition_by"
            )
        # Sorting, version and partition columns cannot be Nullable in ClickHouse (NULLs load as defaults).
        not_nullable = {*primary_key, *partition, options.version_column}
        lines = [
            self.column_sql(
                field,
                is_key=field.name in primary_key,
                nullable=field.name not in not_nullable,
                low_cardinality=field.name in options.low_cardinality,
            )
            for field in schema
        ]
        engine = options.engine or ("ReplacingMergeTree" if primary_key else "MergeTree")
        if options.is_deleted_column and (engine != "ReplacingMergeTree" or not options.version_column):
            raise TerminalError(
                f"ClickHouse table {table}: deleting rows needs ReplacingMergeTree with a version column; "
                "set target.clickhouse.version_column (e.g. the cursor column)"
            )
        if engine == "ReplacingMergeTree" and options.version_column:
            marker = f", {self.quote(options.is_deleted_column)}" if options.is_deleted_column else ""
            engine = f"ReplacingMergeTree({self.quote(options.version_column)}{marker})"
        elif engine not in ("ReplacingMergeTree", "MergeTree"):
            raise TerminalError(
                f"ClickHouse engine {engine!r} is not supported; use ReplacingMergeTree or MergeTree"
            )
        order = f"({self.column_list(primary_key)})" if primary_key else "tuple()"
        partition_clause = f"\nPARTITION BY {options.partition_by.strip()}" if options.partition_by else ""
        return (
            f"CREATE TABLE {self.qualify(table)} (\n  " + ",\n  ".join(lines) + f"\n)\nENGINE = {engine}"
            f"{partition_clause}\nORDER BY {order}\n"
            f"SETTINGS non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}"
        )

    def column_sql(
        self,
        field: pa.Field,
        *,
        is_key: bool = False,
        nullable: bool | None = None,
        low_cardinality: bool = False,
    ) -> str:
        """``name Nullable(T)`` for a nullable field unless it is a key or ``nullable`` is False (sorting
        columns cannot be Nullable); ``low_cardinality`` asks for LowCardinality on a String column."""
        kind = self.sql_type(field, is_key=is_key)
        wrapped = kind.startswith("LowCardinality(")
        if wrapped:
            kind = kind[len("LowCardinality(") : -1]
        low_cardinality = wrapped or (low_cardinality and kind == "String")
        if field.nullable and (not is_key if nullable is None else nullable):
            kind = f"Nullable({kind})"
        if low_cardinality:
            # ClickHouse only allows LowCardinality(Nullable(T)), never the other way round.
            kind = f"LowCardinality({kind})"
        return f"{self.quote(field.name)} {kind}"

    def rename_table_sql(self, table: TableRef, new_name: str) -> str:
        return f"RENAME TABLE {self.qualify(table)} TO {self.qualify(TableRef(new_name, table.schema))}"

    def swap_tables_sql(self, target: TableRef, loaded: TableRef, target_exists: bool = True) -> list[str]:
        """``EXCHANGE TABLES`` swaps both names atomically; the loaded name then holds the old data."""
        if not target_exists:
            return [self.rename_table_sql(loaded, target.name)]
        return [
            f"EXCHANGE TABLES {self.qualify(loaded)} AND {self.qualify(target)}",
            self.drop_table_sql(loaded),
        ]

    def create_like_sql(self, existing: TableRef, new: TableRef) -> str | None:
        """An empty table with the same columns, engine, keys and partitioning (for ``replace``)."""
        return f"CREATE TABLE {self.qualify(new)} AS {self.qualify(existing)}"

    # ----------------------------------------------------------------- reading
    def read_batches(
        self, conn: Any, query: Query, columns: Sequence[Column], batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        """Stream Arrow blocks from ClickHouse, re-sliced to at most ``batch_size`` rows and cast to the
        column types the engine expects."""
        from ._arrow import schema_of

        schema = schema_of(columns)
        settings = {**_READ_SETTINGS, "max_block_size": batch_size}
        parameters = bind_values(query.params) if query.params else None
        sql = query.sql if parameters else query.sql.replace("%%", "%")
        with conn.client.query_arrow_stream(sql, parameters=parameters, settings=settings) as stream:
            for block in stream:
                block = block.cast(schema) if block.schema != schema else block
                for offset in range(0, block.num_rows, batch_size):
                    yield block.slice(offset, batch_size)

    # ----------------------------------------------------------------- loading
    def create_staging_table(
        self, conn: Any, target: TableRef, columns: Sequence[str], within: KeySlice | None = None
    ) -> TableRef:
        staging = self.helper_table(TableRef(target.name), "__sync_stage")
        self.execute(conn, f"DROP TEMPORARY TABLE IF EXISTS {self.qualify(staging)}").close()
        self.execute(
            conn,
            f"CREATE TEMPORARY TABLE {self.qualify(staging)} ENGINE = Memory AS "
            f"SELECT {self.column_list(columns)} FROM {self.qualify(target)} WHERE 0",
        ).close()
        return staging

    def bulk_insert(self, conn: Any, table: TableRef, batches: Iterable[pa.RecordBatch]) -> int:
        """``insert_arrow`` per batch (ClickHouse's native columnar path); returns the row count."""
        import pyarrow as pa

        total = 0
        for batch in batches:
            if batch.num_rows == 0:
                continue
            settings: dict[str, Any] = {}
            if conn.insert_scope is not None:
                conn.inserts_in_scope += 1
                settings = {
                    "insert_deduplicate": 1,
                    "insert_deduplication_token": f"{conn.insert_scope}:{conn.inserts_in_scope}",
                }
            conn.client.insert_arrow(
                table.name,
                _insertable(pa.Table.from_batches([batch])),
                database=table.schema,
                settings=settings,
            )
            total += batch.num_rows
        return total

    def new_keys_count_query(self, staging: TableRef, target: TableRef, keys: Sequence[str]) -> Query:
        key_tuple = f"({self.column_list(keys)})"
        return Query(
            f"SELECT count() FROM {self.qualify(staging)} WHERE {key_tuple} NOT IN (SELECT {key_tuple} FROM "
            f"{self.qualify(target)} WHERE {key_tuple} IN (SELECT {key_tuple} FROM {self.qualify(staging)}))"
        )

    def upsert_sql(
        self, staging: TableRef, target: TableRef, columns: Sequence[str], keys: Sequence[str]
    ) -> str:
        """A plain insert: the target's ReplacingMergeTree engine keeps one row per key (the newest one)."""
        return self.insert_select_sql(staging, target, columns)

    def final_select_sql(self, table: TableRef, columns: Sequence[str], keys: Sequence[str] = ()) -> str:
        """Read a ReplacingMergeTree table as it will look after merges: one row per key."""
        order = f" ORDER BY {self.column_list(keys)}" if keys else ""
        return f"SELECT {self.column_list(columns)} FROM {self.qualify(table)} FINAL{order}"

    current_schema_sql = "SELECT currentDatabase()"

    # ----------------------------------------------------------------- append ledger
    def ledger_table_sql(self, ledger: TableRef) -> str:
        columns = (
            "pipeline String",
            "table_name String",
            "range_start String",
            "range_end String",
            "run_id Nullable(String)",
            "row_count Int64",
            "loaded_at DateTime64(6, 'UTC')",
        )
        lines = ",\n  ".join(
            f"{self.quote(name)} {kind}" for name, kind in (c.split(" ", 1) for c in columns)
        )
        key = self.column_list(["pipeline", "table_name", "range_start", "range_end"])
        return (
            f"CREATE TABLE IF NOT EXISTS {self.qualify(ledger)} (\n  {lines}\n)\n"
            f"ENGINE = ReplacingMergeTree({self.quote('loaded_at')})\nORDER BY ({key})"
        )

    def ledger_insert_query(self, ledger: TableRef, values: Sequence[Any]) -> Query:
        query = super().ledger_insert_query(ledger, values)
        scope = ":".join(str(value) for value in values[:4])  # pipeline, table, range start, range end
        return LedgerInsert(query.sql, query.params, scope=scope)

    def ledger_lookup_query(
        self, ledger: TableRef, pipeline: str, table_name: str, range_start: str
    ) -> Query:
        query = super().ledger_lookup_query(ledger, pipeline, table_name, range_start)
        qualified = self.qualify(ledger)
        return Query(query.sql.replace(f"FROM {qualified} ", f"FROM {qualified} FINAL ", 1), query.params)


def _insertable(table: pa.Table) -> pa.Table:
    """Arrow types ClickHouse's Arrow input cannot take directly, in the form their String columns expect."""
    import pyarrow as pa

    for index, field in enumerate(table.schema):
        if pa.types.is_time(field.type):
            table = table.set_column(index, field.name, table.column(index).cast(pa.string()))
        elif pa.types.is_duration(field.type):
            table = table.set_column(index, field.name, table.column(index).cast(pa.int64()))
    return table
