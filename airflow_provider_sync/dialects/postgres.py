"""PostgreSQL through psycopg 3.

Reads stream through a named (server-side) cursor, so memory stays bounded by the batch size. Loads go
through ``COPY ... FROM STDIN`` (binary format where every column has an exact binary encoding, see
postgres_binary; text format otherwise, both built column-wise) into a temporary staging table, then
``INSERT ... ON CONFLICT ... DO UPDATE ... WHERE (t.*) IS DISTINCT FROM (excluded.*)`` so unchanged rows
are not rewritten.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import SyncError, TerminalError

from ._ledger import lock_digest
from .base import Capabilities
from .copy_pipeline import NestedLoads, run_ahead
from .postgres_types import PostgresTypes
from .types import Column, LoadCounts, Query, TableRef

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.core.partitions import KeySlice

    from .connection import ConnectionInfo

_CURSOR_NUMBERS = itertools.count(1)
# The text format reports 'COPY t, line 3, column c: "value"', the binary one 'COPY t, line 3, column c'; a
# row's constraint (NOT NULL, CHECK) names no column.
_COPY_CONTEXT = re.compile(r"COPY [^,]+, line (\d+)(?:, column ([^:\n]+))?")
_CONNECT_OPTIONS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "connect_timeout",
    "options",
    "target_session_attrs",
)

_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = %s AND n.nspname = COALESCE(%s, current_schema())
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_PRIMARY_KEY_SQL = """
SELECT a.attname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE i.indisprimary AND c.relname = %s AND n.nspname = COALESCE(%s, current_schema())
ORDER BY k.position
"""

_UNIQUE_KEYS_SQL = """
SELECT array_agg(a.attname ORDER BY k.position)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE i.indisunique AND i.indpred IS NULL AND c.relname = %s AND n.nspname = COALESCE(%s, current_schema())
GROUP BY i.indexrelid
"""


def _decode_bytea_hex(text: str) -> bytes:
    return bytes.fromhex(text[2:])  # bytea_output = hex: "\\x" then two digits per byte


class PostgresDialect(PostgresTypes):
    capabilities = Capabilities(
        name="postgres",
        driver_module="psycopg",
        pip_extra="postgres",
        change_capture="airflow_provider_sync.cdc.runner:PostgresCapture",
        param_style="format",
        bulk_load="copy",
        upsert_style="on_conflict",
        max_identifier_length=63,
        row_value_comparison=True,
        transactional_ddl=True,
        supports_schemas=True,
        native_json=True,
        target_lock="pg_advisory_xact_lock",
        target_lock_shared=True,
    )

    def connect(self, info: ConnectionInfo) -> Any:
        from . import require_driver

        psycopg: Any = require_driver("postgres")
        from psycopg.types.string import TextLoader

        options = {k: v for k, v in info.extra.items() if k in _CONNECT_OPTIONS}
        conn = psycopg.connect(
            host=info.host or "localhost",
            port=info.port or 5432,
            user=info.login,
            password=info.password,
            dbname=info.database,
            autocommit=False,
            **options,
        )
        # JSON stays text (byte-for-byte for json, normalised by the server for jsonb); no Python objects.
        for type_name in ("json", "jsonb"):
            conn.adapters.register_loader(type_name, TextLoader)
        conn.execute("SET TIME ZONE 'UTC'")
        conn.commit()
        return conn

    def begin_snapshot(self, conn: Any) -> None:
        from psycopg import IsolationLevel

        if conn.info.transaction_status != 0:  # not idle: earlier reads only, nothing to keep
            conn.rollback()
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True

    def streaming_cursor(self, conn: Any) -> Any:
        return conn.cursor(name=f"sync_extract_{next(_CURSOR_NUMBERS)}")

    def read_batches(
        self, conn: Any, query: Query, columns: Sequence[Column], batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        """Stream ``COPY (query) TO STDOUT (FORMAT csv)`` and parse it column-wise with pyarrow: no Python
        object per value. The text forms are pinned first (ISO dates, hex bytea, exact floats; timestamps
        carry their offset); NULL is an unquoted empty field, '' a quoted one."""
        from psycopg import ClientCursor

        from ._arrow import csv_batch

        if not columns or conn.info.encoding != "utf-8":
            yield from super().read_batches(conn, query, columns, batch_size)
            return
        self._fix_text_forms(conn, columns)
        # COPY takes no bind parameters: let psycopg quote them into the statement as literals.
        sql = ClientCursor(conn).mogrify(query.sql, self.bind_params(query.params))

        def parse(block: bytearray, longest: int) -> pa.RecordBatch:
            return csv_batch(
                block,
                columns,
                true_values=["t"],
                false_values=["f"],
                binary_decoder=_decode_bytea_hex,
                longest_row=longest,
            )

        statement = f"COPY ({sql}) TO STDOUT (FORMAT csv)"
        # One block is parsed (in C++, without the GIL) on a worker thread while the next is read.
        with ThreadPoolExecutor(1) as parser, conn.cursor() as cursor, cursor.copy(statement) as copy:
            pending: Future[pa.RecordBatch] | None = None
            # Rows go into one growing buffer: keeping a Python object per row alive makes the garbage
            # collector rescan them over and over, which costs more than the copy.
            block, rows, longest = bytearray(), 0, 0
            for row in copy:  # one CSV line (a whole row, embedded newlines included) per chunk
                block += row
                rows += 1
                if len(row) > longest:
                    longest = len(row)
                if rows >= batch_size:
                    parsing = parser.submit(parse, block, longest)
                    if pending is not None:
                        yield pending.result()
                    pending = parsing
                    block, rows, longest = bytearray(), 0, 0
            if pending is not None:
                yield pending.result()
            if rows:
                yield parse(block, longest)

    @staticmethod
    def _fix_text_forms(conn: Any, columns: Sequence[Column]) -> None:
        """Make sure the text the COPY read path parses has the forms it expects, also on connections
        opened elsewhere (an Airflow hook) rather than by :meth:`connect`."""
        import pyarrow as pa

        if not (conn.info.parameter_status("DateStyle") or "").startswith("ISO"):
            conn.execute("SET DateStyle = 'ISO, YMD'")
        kinds = [column.arrow_type for column in columns]
        if any(pa.types.is_binary(kind) for kind in kinds):
            conn.execute("SET bytea_output = 'hex'")
        if any(pa.types.is_floating(kind) for kind in kinds):
            conn.execute("SET extra_float_digits = 3")

    def translate_error(self, exc: BaseException) -> SyncError | None:
        translated = super().translate_error(exc)
        diag = getattr(exc, "diag", None)
        where = _COPY_CONTEXT.search(getattr(diag, "context", None) or "") if diag else None
        if translated is not None and where:
            place = f"staged row {where.group(1)}" + (f", column {where.group(2)}" if where.group(2) else "")
            return type(translated)(f"{translated} ({place})")
        return translated

    def is_transient(self, exc: BaseException) -> bool:
        state = getattr(exc, "sqlstate", None) or ""
        return state.startswith(("08", "40", "53", "57P")) or state == "55P03" or super().is_transient(exc)

    def is_unique_violation(self, exc: BaseException) -> bool:
        from psycopg import errors

        return isinstance(exc, errors.UniqueViolation)

    # ----------------------------------------------------------------- introspection
    def table_exists(self, conn: Any, table: TableRef) -> bool:
        row = conn.execute(
            "SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = %s AND n.nspname = COALESCE(%s, current_schema()) "
            "AND c.relkind IN ('r', 'v', 'm', 'p', 'f')",
            [table.name, table.schema],
        ).fetchone()
        return bool(row[0])

    def get_columns(self, conn: Any, table: TableRef) -> list[Column]:
        rows = conn.execute(_COLUMNS_SQL, [table.name, table.schema]).fetchall()
        if not rows:
            raise TerminalError(f"table {table} does not exist in PostgreSQL (or has no columns you can see)")
        return [
            Column(name, db_type, self.arrow_type(db_type), bool(nullable))
            for name, db_type, nullable in rows
        ]

    def get_primary_key(self, conn: Any, table: TableRef) -> list[str]:
        return [row[0] for row in conn.execute(_PRIMARY_KEY_SQL, [table.name, table.schema]).fetchall()]

    def estimate_rows(self, conn: Any, table: TableRef) -> int | None:
        row = conn.execute(
            "SELECT c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = %s AND n.nspname = COALESCE(%s, current_schema())",
            [table.name, table.schema],
        ).fetchone()
        return int(row[0]) if row and row[0] and row[0] > 0 else None

    def estimate_query_rows(self, conn: Any, query: Query) -> int | None:
        import json

        explain = Query(f"EXPLAIN (FORMAT JSON) {query.sql}", query.params)
        plan = self.scalar(conn, explain)  # planning only: costs no scan
        rows = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]["Plan Rows"]
        return int(rows) if rows and rows > 1 else None  # 1 is the planner's floor, not a count

    def get_unique_keys(self, conn: Any, table: TableRef) -> list[list[str]]:
        rows = conn.execute(_UNIQUE_KEYS_SQL, [table.name, table.schema]).fetchall()
        return [list(columns) for (columns,) in rows]

    def query_columns(self, conn: Any, sql: str) -> list[Column]:
        cursor = conn.execute(f"SELECT * FROM ({sql}) sync_probe WHERE false")
        result = cursor.pgresult
        oids = [result.ftype(i) for i in range(result.nfields)]
        modifiers = [result.fmod(i) for i in range(result.nfields)]
        names = [d.name for d in cursor.description]
        types = conn.execute(
            "SELECT format_type(t.oid, t.modifier) FROM unnest(%s::oid[], %s::int[]) "
            "WITH ORDINALITY AS t(oid, modifier, position) ORDER BY t.position",
            [oids, modifiers],
        ).fetchall()
        return [Column(n, t, self.arrow_type(t)) for n, (t,) in zip(names, types, strict=True)]

    # ----------------------------------------------------------------- loading
    def byte_order_sql(self, column: str) -> str:
        return f'{self.quote(column)} COLLATE "C"'  # byte order of UTF-8: code point order

    def create_staging_table(
        self, conn: Any, target: TableRef, columns: Sequence[str], within: KeySlice | None = None
    ) -> TableRef:
        """A temporary table to merge from - or the target itself while it holds no row (of the key slice
        ``within``, for a partition): an initial load has nothing to merge with, so the rows are copied
        once instead of twice (and :meth:`upsert` then has nothing left to do)."""
        probe = self.execute(conn, self.no_rows_query(target, within))
        empty = bool(probe.fetchone()[0])
        probe.close()
        if empty:
            return target
        staging = self.helper_table(TableRef(target.name, "pg_temp"), "__sync_stage")
        conn.execute(f"DROP TABLE IF EXISTS {self.qualify(staging)}", [])
        conn.execute(
            f"CREATE TEMPORARY TABLE {self.quote(staging.name)} AS "
            f"SELECT {self.column_list(columns)} FROM {self.qualify(target)} WHERE false",
            [],
        )
        return staging

    def bulk_insert(self, conn: Any, table: TableRef, batches: Iterable[pa.RecordBatch]) -> int:
        """``COPY ... FROM STDIN``; the next batch is read and encoded on a producer thread while the
        driver sends the current one (both release the GIL), at most one batch ahead."""
        from ._arrow import iter_nonempty
        from .postgres_binary import binary_encoder, copy_payloads

        deferred = _NESTED_LOADS.defer(conn, batches, lambda held: self.bulk_insert(conn, table, held))
        if deferred is not None:  # called while a COPY streams on conn: written once that one ended
            return deferred
        remaining = iter_nonempty(iter(batches))
        first = next(remaining, None)
        if first is None:
            return 0
        columns, into = self.column_list(first.schema.names), self.qualify(table)
        binary = binary_encoder(conn, f"SELECT {columns} FROM {into} WHERE false", first.schema)
        # COPY takes no parameters, so undo the percent doubling quote() does for execute().
        statement = f"COPY {into} ({columns}) FROM STDIN{' (FORMAT binary)' if binary else ''}"
        total = 0
        with _NESTED_LOADS.streaming(conn) as streaming:
            with conn.cursor() as cursor, cursor.copy(statement.replace("%%", "%")) as copy:
                for rows, payload in run_ahead(copy_payloads(itertools.chain([first], remaining), binary)):
                    copy.write(payload)
                    total += rows
            streaming.run_deferred()
        return total

    def upsert_sql(
        self, staging: TableRef, target: TableRef, columns: Sequence[str], keys: Sequence[str]
    ) -> str:
        others = [c for c in columns if c not in keys]
        changed = (
            f"({self.column_list(others, 't.')}) IS DISTINCT FROM ({self.column_list(others, 'excluded.')})"
            if len(others) > 1
            else " OR ".join(f"t.{self.quote(c)} IS DISTINCT FROM excluded.{self.quote(c)}" for c in others)
        )
        return self.on_conflict_upsert_sql(staging, target, columns, keys, changed)

    def upsert(
        self,
        conn: Any,
        staging: TableRef,
        target: TableRef,
        columns: Sequence[str],
        keys: Sequence[str],
        staged_rows: int,
    ) -> LoadCounts:
        if staging == target:  # the rows were copied straight into the empty target
            return LoadCounts(inserted=staged_rows)
        # One pass: rows the statement inserted have xmax 0, updated rows carry the locking transaction;
        # unchanged rows are filtered by the DO UPDATE ... WHERE and not returned at all.
        counted = (
            f"WITH merged AS ({self.upsert_sql(staging, target, columns, keys)} RETURNING "
            "(t.xmax = 0) AS sync_inserted) "
            "SELECT COUNT(*) FILTER (WHERE sync_inserted), COUNT(*) FROM merged"
        )
        inserted, written = conn.execute(counted, []).fetchone()
        return LoadCounts(
            inserted=int(inserted),
            updated=int(written) - int(inserted),
            unchanged=max(staged_rows - int(written), 0),
        )

    def create_like_sql(self, existing: TableRef, new: TableRef) -> str | None:
        return f"CREATE TABLE {self.qualify(new)} (LIKE {self.qualify(existing)} INCLUDING ALL)"

    # ----------------------------------------------------------------- shared targets
    current_schema_sql = "SELECT current_schema()"

    def target_lock_query(self, identity: str) -> Query:
        # Transaction-scoped: the load's commit or rollback releases it, so it is never left behind.
        return Query("SELECT pg_advisory_xact_lock(%s)", [_lock_key(identity)])

    def target_shared_lock_query(self, identity: str) -> Query:
        return Query("SELECT pg_advisory_xact_lock_shared(%s)", [_lock_key(identity)])

    def ledger_timestamp_type(self) -> str:
        return "timestamp with time zone"


_NESTED_LOADS = NestedLoads()


def _lock_key(identity: str) -> int:
    """The advisory lock key (a signed 64-bit integer) of a target table's identity."""
    return int.from_bytes(lock_digest(identity)[:8], "big", signed=True)
