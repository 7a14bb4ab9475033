"""Oracle column types and values: declared types <-> Arrow, the types of created columns, and the name
and value conversions Oracle needs (upper-case folding of plain names, UTC-naive timestamps).

Split from :mod:`.oracle` so the dialect's SQL and loading stay apart from its type mapping,
as PostgreSQL and MySQL already are; the names stay importable from :mod:`.oracle`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

from .base import Dialect
from .types import Column

if TYPE_CHECKING:
    import pyarrow as pa

    from .declared import DeclaredType

_PLAIN_LOWER = re.compile(r"^[a-z][a-z0-9_$#]*$")
_PLAIN_UPPER = re.compile(r"^[A-Z][A-Z0-9_$#]*$")


def to_oracle_name(name: str) -> str:
    """The name Oracle stores: plain lower-case identifiers fold to upper case, others stay as written."""
    return name.upper() if _PLAIN_LOWER.match(name) else name


def from_oracle_name(name: str) -> str:
    """The inverse of :func:`to_oracle_name` for names read from the data dictionary."""
    return name.lower() if _PLAIN_UPPER.match(name) else name


def oracle_value(value: Any) -> Any:
    """A parameter in the form the driver binds without loss (UTC-naive timestamps, numeric booleans)."""
    if isinstance(value, dt.datetime) and value.utcoffset() is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.time):
        return value.isoformat(timespec="microseconds")
    return value


class OracleTypes(Dialect):
    """The type half of :class:`~airflow_provider_sync.dialects.oracle.OracleDialect`."""

    def arrow_type(self, db_type: str) -> pa.DataType:
        import pyarrow as pa

        name = db_type.upper().strip()
        base = name.split("(")[0].strip()
        if base == "NUMBER":
            numbers = [int(n) for n in re.findall(r"\d+", name)]
            if not numbers:
                return pa.decimal128(38, 10)  # unconstrained NUMBER: exact, with room for fractions
            precision, scale = [*numbers, 0][:2]
            if scale == 0 and precision <= 18:
                return pa.int16() if precision <= 4 else pa.int32() if precision <= 9 else pa.int64()
            return pa.decimal128(min(precision, 38), scale)
        if base in ("BINARY_FLOAT",):
            return pa.float32()
        if base in ("BINARY_DOUBLE", "FLOAT"):
            return pa.float64()
        if base == "DATE" or (base.startswith("TIMESTAMP") and "TIME ZONE" not in name):
            return pa.timestamp("us")
        if base.startswith("TIMESTAMP"):
            return pa.timestamp("us", tz="UTC")
        if base in ("RAW", "BLOB", "LONG RAW"):
            return pa.binary()
        if base == "BOOLEAN":
            return pa.bool_()
        return pa.string()

    def declared_type(self, db_type: str) -> DeclaredType | None:
        from .declared import DeclaredType, parse_declared

        if db_type.upper().strip() == "DATE":  # Oracle's DATE holds a time of day, to the second
            return DeclaredType("timestamp", precision=0)
        return parse_declared(db_type)

    def declared_sql(self, declared: DeclaredType, field: pa.Field, *, is_key: bool = False) -> str | None:
        kind, length, precision = declared.kind, declared.length, declared.precision
        digits = 6 if precision is None else min(max(precision, 0), 9)
        if kind == "char" and length:
            return f"NCHAR({length})" if length <= 1000 else None
        if kind == "varchar" and length:
            return f"NVARCHAR2({length})" if length <= 2000 else None
        if kind == "numeric" and precision is not None and precision <= 38:
            return f"NUMBER({precision}, {declared.scale or 0})"
        if kind == "timestamp":
            return f"TIMESTAMP({digits})"
        if kind == "timestamptz":
            return f"TIMESTAMP({digits}) WITH TIME ZONE"
        if kind == "bytes" and length:
            return f"RAW({length})" if length <= 2000 else None
        return "CHAR(36)" if kind == "uuid" else None

    def arrow_sql_type(self, field: pa.Field, *, is_key: bool = False) -> str:
        import pyarrow as pa

        from ._arrow import is_json_field

        kind = field.type
        if pa.types.is_dictionary(kind):
            return self.sql_type(pa.field(field.name, kind.value_type), is_key=is_key)
        if pa.types.is_boolean(kind):
            return "NUMBER(1)"
        if pa.types.is_integer(kind):
            unsigned = pa.types.is_unsigned_integer(kind)
            return f"NUMBER({ {8: 3, 16: 5, 32: 10, 64: 20 if unsigned else 19}[kind.bit_width] })"
        if pa.types.is_floating(kind):
            return "BINARY_DOUBLE" if kind.bit_width == 64 else "BINARY_FLOAT"
        if pa.types.is_decimal(kind):
            if kind.precision > 38:
                raise TerminalError(
                    f"column {field.name!r} is decimal({kind.precision}, {kind.scale}); Oracle NUMBER "
                    "holds at most 38 digits. Cast it with a schema_map step"
                )
            return f"NUMBER({kind.precision}, {kind.scale})"
        if pa.types.is_timestamp(kind):
            return "TIMESTAMP(6) WITH TIME ZONE" if kind.tz else "TIMESTAMP(6)"
        if pa.types.is_date(kind):
            return "DATE"
        if pa.types.is_time(kind):
            return "VARCHAR2(15)"  # Oracle has no time-of-day type; ISO text sorts correctly
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
            return "RAW(2000)" if is_key else "BLOB"
        if is_json_field(field):
            return "CLOB"
        return "NVARCHAR2(1000)" if is_key else "NCLOB"

    def value_converter(self, column: Column) -> Any:
        import pyarrow as pa

        kind = column.arrow_type
        if pa.types.is_integer(kind):
            return int
        if pa.types.is_floating(kind):
            return float
        if pa.types.is_boolean(kind):
            return bool
        return None

    def param_converter(self, arrow_type: pa.DataType) -> Any:
        import pyarrow as pa

        if (
            pa.types.is_timestamp(arrow_type)
            or pa.types.is_boolean(arrow_type)
            or pa.types.is_time(arrow_type)
        ):
            return oracle_value
        return None


__all__ = ["OracleTypes", "from_oracle_name", "oracle_value", "to_oracle_name"]
