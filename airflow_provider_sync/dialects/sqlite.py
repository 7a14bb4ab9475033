"""SQLite (stdlib ``sqlite3``): the embedded database of the demo and of fast tests.

SQLite has dynamic typing, so the declared column type drives how values are read: ``DECIMAL(p,s)`` reads
as a decimal, ``TIMESTAMP``/``DATETIME`` as ISO text timestamps, ``TIMESTAMPTZ`` as UTC timestamps,
``BOOLEAN`` as 0/1, ``JSON`` as text. Timestamps are written as ISO text in one format,
``YYYY-MM-DD HH:MM:SS.ffffff`` (``+00:00`` appended for zone-aware values), so text comparison stays
chronological and one instant has one spelling. Cursor bounds are bound in the format the source column
itself stores (``CURRENT_TIMESTAMP`` writes whole seconds, other writers 3 or 6 fraction digits, ``T``
separators or ``Z``): a bound spelled differently from an equal stored value would compare unequal and
re-read (or skip) the rows tied with the watermark.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

from .base import Capabilities, Dialect
from .types import Column, TableRef

if TYPE_CHECKING:
    import pyarrow as pa

    from .connection import ConnectionInfo
    from .declared import DeclaredType

_PRECISION = re.compile(r"\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")
_STORED_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?P<sep>[ T])\d{2}:\d{2}:\d{2}(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d{2}:?\d{2})?$"
)


def timestamp_text(value: dt.datetime) -> str:
    """The text the product writes for a timestamp: always six fraction digits, aware values in UTC with
    ``+00:00`` (``isoformat`` would drop ``.000000`` for whole seconds: two spellings in one column)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc)
    return value.isoformat(sep=" ", timespec="microseconds")


def stored_format(sample: Any) -> tuple[str, int | None, str | None] | None:
    """How a stored text timestamp is spelled: separator, fraction digits (None: none, whole seconds) and
    zone suffix (``Z``, ``+00:00``, ``+0000`` or None); None when ``sample`` is no text timestamp."""
    match = _STORED_TIMESTAMP.match(sample) if isinstance(sample, str) else None
    if match is None:
        return None
    fraction, zone = match.group("fraction"), match.group("zone")
    suffix = None if zone is None else "Z" if zone == "Z" else "+00:00" if ":" in zone else "+0000"
    return match.group("sep"), len(fraction) if fraction else None, suffix


def timestamp_in_format(value: dt.datetime, style: tuple[str, int | None, str | None]) -> str:
    """``value`` spelled as the stored values of a column are (see :func:`stored_format`). A fraction a
    whole-second column cannot hold is written with six digits, which still sorts correctly."""
    separator, digits, suffix = style
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    text = value.strftime(f"%Y-%m-%d{separator}%H:%M:%S")
    micros = f"{value.microsecond:06d}"
    if digits is None:
        text += f".{micros}" if value.microsecond else ""
    else:
        text += "." + (micros + "0" * digits)[:digits]
    return text + (suffix or "")


def _to_param(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return timestamp_text(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value


class SQLiteDialect(Dialect):
    capabilities = Capabilities(
        name="sqlite",
        driver_module="sqlite3",
        pip_extra="",
        param_style="qmark",
        bulk_load="executemany",
        upsert_style="on_conflict",
        max_identifier_length=1000,
        row_value_comparison=True,
        transactional_ddl=True,
        supports_schemas=True,
        native_json=False,
        file_based=True,
        # begin_write opens BEGIN IMMEDIATE: the database write lock is the target lock.
        target_lock="begin_immediate",
        single_writer=True,
    )

    def connect(self, info: ConnectionInfo) -> Any:
        import sqlite3

        # Autocommit at the driver level; transactions are explicit (BEGIN in begin_write/begin_snapshot)
        # so DDL takes part in them too.
        conn = sqlite3.connect(
            info.database or ":memory:", isolation_level=None, timeout=float(info.extra.get("timeout", 30))
        )
        return conn

    def begin_snapshot(self, conn: Any) -> None:
        conn.execute("BEGIN")

    def begin_write(self, conn: Any) -> None:
        if not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE")

    def bind_value(self, value: Any) -> Any:
        return _to_param(value)

    def is_transient(self, exc: BaseException) -> bool:
        return "locked" in str(exc) or "busy" in str(exc)

    def cursor_bound_renderer(self, conn: Any, source: TableRef | str, column: Column) -> Any:
        """Bounds on a text-stored timestamp column spelled as its newest stored value is."""
        import pyarrow as pa

        if not (pa.types.is_timestamp(column.arrow_type) or pa.types.is_string(column.arrow_type)):
            return None
        quoted = self.quote(column.name)
        row = conn.execute(
            f"SELECT MAX({quoted}) FROM {self.source_sql(source)} WHERE typeof({quoted}) = 'text'"
        ).fetchone()
        style = stored_format(row[0] if row else None)
        if style is None:
            return None
        return lambda value: timestamp_in_format(value, style) if isinstance(value, dt.datetime) else value

    def is_unique_violation(self, exc: BaseException) -> bool:
        import sqlite3

        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc).upper()

    # ----------------------------------------------------------------- introspection
    def _schema(self, table: TableRef) -> str:
        return self.quote(table.schema or "main")

    def table_exists(self, conn: Any, table: TableRef) -> bool:
        master = "sqlite_temp_master" if table.schema == "temp" else f"{self._schema(table)}.sqlite_master"
        row = conn.execute(
            f"SELECT COUNT(*) FROM {master} WHERE type IN ('table', 'view') AND name = ?", [table.name]
        ).fetchone()
        return bool(row[0])

    def _table_info(self, conn: Any, table: TableRef) -> list[tuple[Any, ...]]:
        rows = conn.execute(f"PRAGMA {self._schema(table)}.table_info({self.quote(table.name)})").fetchall()
        if not rows:
            raise TerminalError(f"table {table} does not exist in the SQLite database; check schema/table")
        return list(rows)

    def get_columns(self, conn: Any, table: TableRef) -> list[Column]:
        return [
            Column(name, (decl or "").lower(), self.arrow_type(decl or ""), nullable=not notnull and not pk)
            for _cid, name, decl, notnull, _default, pk in self._table_info(conn, table)
        ]

    def get_primary_key(self, conn: Any, table: TableRef) -> list[str]:
        keyed = [(pk, name) for _cid, name, _decl, _nn, _default, pk in self._table_info(conn, table) if pk]
        return [name for _pk, name in sorted(keyed)]

    def get_unique_keys(self, conn: Any, table: TableRef) -> list[list[str]]:
        schema = self._schema(table)
        keys = []
        for _seq, name, unique, _origin, partial in conn.execute(
            f"PRAGMA {schema}.index_list({self.quote(table.name)})"
        ).fetchall():
            if unique and not partial:
                info = conn.execute(f"PRAGMA {schema}.index_info({self.quote(name)})").fetchall()
                keys.append([column for _seqno, _cid, column in sorted(info)])
        primary_key = self.get_primary_key(conn, table)
        return [*keys, primary_key] if primary_key and primary_key not in keys else keys

    def query_columns(self, conn: Any, sql: str) -> list[Column]:
        import pyarrow as pa

        cursor = conn.execute(f"SELECT * FROM ({sql}) WHERE 0")
        return [Column(d[0], "", pa.string()) for d in cursor.description]

    # ----------------------------------------------------------------- types
    def arrow_type(self, db_type: str) -> pa.DataType:
        import pyarrow as pa

        name = db_type.upper()
        match = _PRECISION.search(name)
        if "BOOL" in name:
            return pa.bool_()
        if "INT" in name:
            return pa.int64()
        if ("DECIMAL" in name or "NUMERIC" in name) and match and match.group(1):
            return pa.decimal128(int(match.group(1)), int(match.group(2) or 0))
        if "TIMESTAMPTZ" in name or "WITH TIME ZONE" in name:
            return pa.timestamp("us", tz="UTC")
        if "TIMESTAMP" in name or "DATETIME" in name:
            return pa.timestamp("us")
        if "DATE" in name:
            return pa.date32()
        if "TIME" in name:
            return pa.time64("us")
        if "BLOB" in name or "BINARY" in name:
            return pa.binary()
        if any(word in name for word in ("REAL", "FLOA", "DOUB")) or name in ("NUMERIC", "DECIMAL"):
            return pa.float64()
        return pa.string()

    def declared_type(self, db_type: str) -> DeclaredType | None:
        from .declared import parse_declared

        # "DECIMAL TEXT(12,2)", "UUID TEXT": a trailing TEXT only pins the affinity (see sql_type).
        return parse_declared(re.sub(r"\s+text\b", "", db_type, flags=re.IGNORECASE))

    def declared_sql(self, declared: DeclaredType, field: pa.Field, *, is_key: bool = False) -> str | None:
        # Only the spellings that keep TEXT affinity: the declared size is documentation here, but it lets
        # a later read of this table (and a sync out of it) know the column again.
        if declared.kind in ("char", "varchar") and declared.length:
            return f"{declared.kind.upper()}({declared.length})"
        return "UUID TEXT" if declared.kind == "uuid" else None

    def arrow_sql_type(self, field: pa.Field, *, is_key: bool = False) -> str:
        import pyarrow as pa

        from ._arrow import is_json_field

        kind = field.type
        if pa.types.is_boolean(kind):
            return "BOOLEAN"
        if pa.types.is_integer(kind):
            return "INTEGER"
        if pa.types.is_floating(kind):
            return "REAL"
        if pa.types.is_decimal(kind):
            # TEXT affinity: NUMERIC affinity would turn decimals into 64-bit floats.
            return f"DECIMAL TEXT({kind.precision},{kind.scale})"
        if pa.types.is_timestamp(kind):
            return "TIMESTAMPTZ" if kind.tz else "TIMESTAMP"
        if pa.types.is_date(kind):
            return "DATE"
        if pa.types.is_time(kind):
            return "TIME"
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
            return "BLOB"
        if is_json_field(field):
            return "JSON TEXT"  # TEXT affinity keeps documents byte-exact; "JSON" marks them on reading
        return "TEXT"

    def value_converter(self, column: Column) -> Any:
        import pyarrow as pa

        kind = column.arrow_type
        if pa.types.is_decimal(kind):
            return lambda v: Decimal(repr(v)) if isinstance(v, float) else Decimal(str(v))
        if pa.types.is_timestamp(kind):

            def to_timestamp(value: Any) -> dt.datetime:
                parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
                if kind.tz is not None and parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=dt.timezone.utc)
                return parsed

            return to_timestamp
        if pa.types.is_date(kind):
            return lambda v: v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v))
        if pa.types.is_time(kind):
            return lambda v: v if isinstance(v, dt.time) else dt.time.fromisoformat(str(v))
        if pa.types.is_boolean(kind):
            return bool
        if pa.types.is_string(kind):
            return lambda v: v if isinstance(v, str) else (v.decode() if isinstance(v, bytes) else str(v))
        if pa.types.is_binary(kind):
            return lambda v: v if isinstance(v, bytes) else str(v).encode()
        return None

    def param_converter(self, arrow_type: pa.DataType) -> Any:
        return _to_param

    # ----------------------------------------------------------------- loading
    def upsert_sql(
        self, staging: TableRef, target: TableRef, columns: Sequence[str], keys: Sequence[str]
    ) -> str:
        changed = " OR ".join(
            f"t.{self.quote(c)} IS NOT excluded.{self.quote(c)}" for c in columns if c not in keys
        )
        return self.on_conflict_upsert_sql(staging, target, columns, keys, changed)

    def rename_table_sql(self, table: TableRef, new_name: str) -> str:
        return f"ALTER TABLE {self.qualify(table)} RENAME TO {self.quote(new_name)}"

    # ----------------------------------------------------------------- shared targets
    current_schema_sql = "SELECT 'main'"

    def ledger_text_type(self) -> str:
        return "TEXT"
