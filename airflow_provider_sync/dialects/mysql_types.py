"""MySQL/MariaDB column types: declared types <-> Arrow, and the DDL of created tables."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .base import Dialect
from .types import Column, TableRef

if TYPE_CHECKING:
    import pyarrow as pa

    from .declared import DeclaredType

_PRECISION = re.compile(r"\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")
_VARCHAR_LIMIT = 16_383  # the longest VARCHAR a utf8mb4 column can declare


class MySQLTypes(Dialect):
    """The type half of :class:`~airflow_provider_sync.dialects.mysql.MySQLDialect`."""

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

    def declared_type(self, db_type: str) -> DeclaredType | None:
        from .declared import DeclaredType, parse_declared

        name = db_type.lower().strip()
        if name.startswith("tinyint(1)") or name in ("bool", "boolean"):
            return DeclaredType("boolean")
        declared = parse_declared(name)
        if declared is not None and declared.kind in ("timestamp", "timestamptz", "time"):
            # DATETIME/TIMESTAMP/TIME without a precision hold whole seconds here; TIMESTAMP is UTC.
            kind = "timestamptz" if name.startswith("timestamp") else declared.kind
            return DeclaredType(kind, precision=declared.precision or 0)
        return declared

    def declared_sql(self, declared: DeclaredType, field: pa.Field, *, is_key: bool = False) -> str | None:
        kind, length, precision = declared.kind, declared.length, declared.precision
        digits = 6 if precision is None else min(max(precision, 0), 6)
        if kind == "char" and length:
            return f"CHAR({length})" if length <= 255 else f"VARCHAR({length})" if length <= 768 else None
        if kind == "varchar" and length:
            # An index holds at most 3072 bytes (768 utf8mb4 characters).
            if is_key:
                return f"VARCHAR({min(length, 768)})"
            return f"VARCHAR({length})" if length <= _VARCHAR_LIMIT else None
        if kind == "numeric" and precision is not None:
            scale = declared.scale or 0
            return f"DECIMAL({precision},{scale})" if precision <= 65 and 0 <= scale <= 30 else None
        if kind in ("timestamp", "timestamptz"):
            return f"DATETIME({digits})"
        if kind == "time":
            return f"TIME({digits})"
        if kind == "bytes" and length:
            return f"VARBINARY({length})" if length <= 3072 else None
        simple = {"uuid": "CHAR(36)", "json": "JSON", "jsonb": "JSON", "date": "DATE", "boolean": "BOOLEAN"}
        return simple.get(kind)

    def create_table_sql(self, table: TableRef, schema: pa.Schema, primary_key: Sequence[str] = ()) -> str:
        """As the base, but keeping the row within MySQL's 65,535-byte limit for inline columns: the widest
        declared VARCHARs become LONGTEXT (stored off-row) until the rest fits."""
        from .declared import declared_of, with_declared

        budget = 65_535 // 4 - 256  # utf8mb4 characters, with room for the fixed-size columns
        widths = {}
        for field in schema:
            declared = declared_of(field)
            if declared and declared.kind in ("char", "varchar") and declared.length:
                widths[field.name] = declared.length
        dropped: set[str] = set()
        for name in sorted(widths, key=lambda n: -widths[n]):
            if sum(widths.values()) <= budget:
                break
            if name not in primary_key:
                dropped.add(name)
                widths.pop(name)
        if dropped:
            import pyarrow as pa

            schema = pa.schema(
                [with_declared(f, None) if f.name in dropped else f for f in schema], metadata=schema.metadata
            )
        return super().create_table_sql(table, schema, primary_key)

    def arrow_sql_type(self, field: pa.Field, *, is_key: bool = False) -> str:
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
