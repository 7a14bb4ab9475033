"""SQL Server column types and values: declared types <-> Arrow, the types of created columns, and the
text form of timestamps that pymssql sends without losing microseconds.

Split from :mod:`.mssql`, as the other dialects' type halves are; the value helpers stay
importable from :mod:`.mssql`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

from .base import Dialect
from .types import Column

if TYPE_CHECKING:
    import pyarrow as pa

    from .declared import DeclaredType


def sql_server_datetime(value: dt.datetime) -> str:
    """ISO 8601 text SQL Server converts exactly to DATETIME2/DATETIMEOFFSET (and to DATETIME when the
    value has whole milliseconds, as every value read from a DATETIME column has). Aware values become UTC."""
    if value.utcoffset() is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    digits = 3 if value.microsecond % 1000 == 0 else 6
    return value.isoformat(timespec="milliseconds" if digits == 3 else "microseconds")


def driver_value(value: Any) -> Any:
    """A bound value in the form pymssql sends without losing precision."""
    if isinstance(value, dt.datetime):
        return sql_server_datetime(value)
    if isinstance(value, dt.time):
        return value.isoformat(timespec="microseconds")
    return value


def driver_params(params: Sequence[Any] | dict[str, Any]) -> Any:
    if isinstance(params, dict):
        return {name: driver_value(value) for name, value in params.items()}
    return tuple(driver_value(value) for value in params)


class MSSQLTypes(Dialect):
    """The type half of :class:`~airflow_provider_sync.dialects.mssql.MSSQLDialect`."""

    def arrow_type(self, db_type: str) -> pa.DataType:
        import pyarrow as pa

        name = db_type.lower().strip()
        base, _, args = name.partition("(")
        numbers = [int(part) for part in args.rstrip(")").split(",") if part.strip().isdigit()]
        simple = {
            "bit": pa.bool_(),
            "tinyint": pa.uint8(),
            "smallint": pa.int16(),
            "int": pa.int32(),
            "bigint": pa.int64(),
            "real": pa.float32(),
            "money": pa.decimal128(19, 4),
            "smallmoney": pa.decimal128(10, 4),
            "date": pa.date32(),
            "datetime": pa.timestamp("us"),
            "smalldatetime": pa.timestamp("us"),
            "datetime2": pa.timestamp("us"),
            "datetimeoffset": pa.timestamp("us", tz="UTC"),
            "time": pa.time64("us"),
            "binary": pa.binary(),
            "varbinary": pa.binary(),
            "image": pa.binary(),
            "timestamp": pa.binary(),
            "rowversion": pa.binary(),
        }
        if base in simple:
            return simple[base]
        if base == "float":
            return pa.float32() if numbers and numbers[0] <= 24 else pa.float64()
        if base in ("decimal", "numeric"):
            precision, scale = [*numbers, 0][:2] if numbers else [18, 0]
            return pa.decimal128(precision, scale)
        return pa.string()

    def declared_sql(self, declared: DeclaredType, field: pa.Field, *, is_key: bool = False) -> str | None:
        kind, length, precision = declared.kind, declared.length, declared.precision
        digits = 6 if precision is None else min(max(precision, 0), 6)
        if kind == "char" and length:
            return f"NCHAR({length})" if length <= 4000 else None
        if kind == "varchar" and length:
            if is_key:
                return f"NVARCHAR({min(length, 450)})"  # a clustered key holds at most 900 bytes
            return f"NVARCHAR({length})" if length <= 4000 else None
        if kind == "numeric" and precision is not None and precision <= 38:
            return f"DECIMAL({precision}, {declared.scale or 0})"
        if kind == "timestamp":
            return f"DATETIME2({digits})"
        if kind == "timestamptz":
            return f"DATETIMEOFFSET({digits})"
        if kind == "time":
            return f"TIME({digits})"
        if kind == "bytes" and length:
            return f"VARBINARY({length})" if length <= 8000 else None
        return {"uuid": "UNIQUEIDENTIFIER", "json": "NVARCHAR(MAX)", "jsonb": "NVARCHAR(MAX)"}.get(kind)

    def arrow_sql_type(self, field: pa.Field, *, is_key: bool = False) -> str:
        import pyarrow as pa

        kind = field.type
        if pa.types.is_dictionary(kind):
            return self.sql_type(pa.field(field.name, kind.value_type), is_key=is_key)
        if pa.types.is_boolean(kind):
            return "BIT"
        if pa.types.is_integer(kind):
            if pa.types.is_unsigned_integer(kind):
                return {8: "TINYINT", 16: "INT", 32: "BIGINT", 64: "DECIMAL(20, 0)"}[kind.bit_width]
            return {8: "SMALLINT", 16: "SMALLINT", 32: "INT", 64: "BIGINT"}[kind.bit_width]
        if pa.types.is_floating(kind):
            return "FLOAT" if kind.bit_width == 64 else "REAL"
        if pa.types.is_decimal(kind):
            if kind.precision > 38:
                raise TerminalError(
                    f"column {field.name!r} is decimal({kind.precision}, {kind.scale}); SQL Server allows at "
                    "most 38 digits. Cast it with a schema_map step"
                )
            return f"DECIMAL({kind.precision}, {kind.scale})"
        if pa.types.is_timestamp(kind):
            return "DATETIMEOFFSET(6)" if kind.tz else "DATETIME2(6)"
        if pa.types.is_date(kind):
            return "DATE"
        if pa.types.is_time(kind):
            return "TIME(6)"
        if pa.types.is_fixed_size_binary(kind):
            return f"BINARY({kind.byte_width})"
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            # A clustered key holds at most 900 bytes.
            return "VARBINARY(900)" if is_key else "VARBINARY(MAX)"
        return "NVARCHAR(450)" if is_key else "NVARCHAR(MAX)"

    def value_converter(self, column: Column) -> Any:
        import pyarrow as pa

        kind = column.arrow_type
        if pa.types.is_string(kind):
            return lambda v: str(v) if isinstance(v, (uuid.UUID, int, float)) else v
        if pa.types.is_timestamp(kind) and kind.tz is not None:
            return lambda v: v.astimezone(dt.timezone.utc) if v.utcoffset() is not None else v
        return None

    def param_converter(self, arrow_type: pa.DataType) -> Any:
        import pyarrow as pa

        if pa.types.is_timestamp(arrow_type):
            return sql_server_datetime
        if pa.types.is_time(arrow_type):
            return driver_value
        return None


__all__ = ["MSSQLTypes", "driver_params", "driver_value", "sql_server_datetime"]
