"""PostgreSQL column types: declared types <-> Arrow, and the types of created columns."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .base import Dialect
from .types import Column

if TYPE_CHECKING:
    import pyarrow as pa

    from .declared import DeclaredType

_PRECISION = re.compile(r"\(\s*(\d+)\s*(?:,\s*(-?\d+)\s*)?\)")


class PostgresTypes(Dialect):
    """The type half of :class:`~airflow_provider_sync.dialects.postgres.PostgresDialect`."""

    def arrow_type(self, db_type: str) -> pa.DataType:
        import pyarrow as pa

        name = db_type.lower().strip()
        if name.endswith("[]"):
            return pa.string()
        match = _PRECISION.search(name)
        base = _PRECISION.sub("", name).strip()
        simple = {
            "boolean": pa.bool_(),
            "smallint": pa.int16(),
            "integer": pa.int32(),
            "bigint": pa.int64(),
            "real": pa.float32(),
            "double precision": pa.float64(),
            "date": pa.date32(),
            "bytea": pa.binary(),
        }
        if base in simple:
            return simple[base]
        if base == "numeric":
            if match and match.group(1):
                precision, scale = int(match.group(1)), int(match.group(2) or 0)
                return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
            return pa.decimal128(38, 18)
        if base.startswith("timestamp"):
            return pa.timestamp("us", tz="UTC") if "with time zone" in base else pa.timestamp("us")
        if base.startswith("time") and "with time zone" not in base:
            return pa.time64("us")
        return pa.string()

    def declared_sql(self, declared: DeclaredType, field: pa.Field, *, is_key: bool = False) -> str | None:
        kind, length, precision = declared.kind, declared.length, declared.precision
        digits = 6 if precision is None else min(max(precision, 0), 6)
        if kind == "char" and length:
            return f"character({length})"
        if kind == "varchar":
            return f"character varying({length})" if length else "character varying"
        if kind == "numeric":
            if precision is None:
                return "numeric"
            return f"numeric({precision},{declared.scale or 0})" if precision <= 1000 else None
        if kind in ("timestamp", "timestamptz"):
            return f"timestamp({digits}) with{'' if kind == 'timestamptz' else 'out'} time zone"
        if kind == "time":
            return f"time({digits}) without time zone"
        # json has no equality operator (upserts compare rows), so JSON documents of any kind get jsonb.
        simple = {"uuid": "uuid", "json": "jsonb", "jsonb": "jsonb", "bytes": "bytea", "date": "date"}
        return simple.get(kind, "boolean" if kind == "boolean" else None)

    def arrow_sql_type(self, field: pa.Field, *, is_key: bool = False) -> str:
        import pyarrow as pa

        from ._arrow import is_json_field

        kind = field.type
        if pa.types.is_boolean(kind):
            return "boolean"
        if pa.types.is_integer(kind):
            if kind.bit_width <= 16 and not (kind.bit_width == 16 and pa.types.is_unsigned_integer(kind)):
                return "smallint"
            if kind.bit_width <= 32 and not (kind.bit_width == 32 and pa.types.is_unsigned_integer(kind)):
                return "integer"
            return "numeric(20,0)" if pa.types.is_uint64(kind) else "bigint"
        if pa.types.is_float32(kind) or pa.types.is_float16(kind):
            return "real"
        if pa.types.is_floating(kind):
            return "double precision"
        if pa.types.is_decimal(kind):
            return f"numeric({kind.precision},{kind.scale})"
        if pa.types.is_timestamp(kind):
            return "timestamp(6) with time zone" if kind.tz else "timestamp(6) without time zone"
        if pa.types.is_date(kind):
            return "date"
        if pa.types.is_time(kind):
            return "time(6) without time zone"
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
            return "bytea"
        if is_json_field(field):
            return "jsonb"
        return "text"

    def value_converter(self, column: Column) -> Any:
        import pyarrow as pa

        textual = column.db_type.startswith(("text", "character", "json", "name", "citext"))
        if pa.types.is_string(column.arrow_type) and not textual:
            return str  # uuid, interval, inet, arrays, enums... arrive as Python objects
        return None
