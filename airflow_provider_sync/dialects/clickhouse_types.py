"""ClickHouse column types: type names (unwrapping ``Nullable``/``LowCardinality``) <-> Arrow, and the
types of created columns.

Split from :mod:`.clickhouse`, as the PostgreSQL and MySQL type halves are, so the dialect's
connection, DDL and loading code stays apart from its type mapping.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .base import Dialect

if TYPE_CHECKING:
    import pyarrow as pa

    from .declared import DeclaredType

_WRAPPER = re.compile(r"^(Nullable|LowCardinality)\((.*)\)$")
PRECISION_UNITS = ((0, "s"), (3, "ms"), (6, "us"), (9, "ns"))


class ClickHouseTypes(Dialect):
    """The type half of :class:`~airflow_provider_sync.dialects.clickhouse.ClickHouseDialect`."""

    def arrow_type(self, db_type: str) -> pa.DataType:
        import pyarrow as pa

        kind = db_type.strip()
        while match := _WRAPPER.match(kind):
            kind = match.group(2).strip()
        name, _, args = kind.partition("(")
        args = args.rstrip(")")
        simple = {
            "Int8": pa.int8(),
            "Int16": pa.int16(),
            "Int32": pa.int32(),
            "Int64": pa.int64(),
            "UInt8": pa.uint8(),
            "UInt16": pa.uint16(),
            "UInt32": pa.uint32(),
            "UInt64": pa.uint64(),
            "Float32": pa.float32(),
            "Float64": pa.float64(),
            "Bool": pa.bool_(),
            "Date": pa.date32(),
            "Date32": pa.date32(),
            "DateTime": pa.timestamp("us", tz="UTC"),
        }
        if name in simple:
            return simple[name]
        if name == "DateTime64":
            precision = int(args.split(",")[0])
            unit = next(unit for digits, unit in PRECISION_UNITS if precision <= digits)
            return pa.timestamp(unit, tz="UTC")
        if name == "Decimal":
            precision, scale = (int(part) for part in args.split(","))
            return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        if name in ("Decimal32", "Decimal64", "Decimal128", "Decimal256"):
            precision = {"Decimal32": 9, "Decimal64": 18, "Decimal128": 38, "Decimal256": 76}[name]
            scale = int(args)
            return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        if name == "Array":
            return pa.list_(self.arrow_type(args))
        return pa.string()

    def declared_sql(self, declared: DeclaredType, field: pa.Field, *, is_key: bool = False) -> str | None:
        precision = declared.precision
        if declared.kind in ("timestamp", "timestamptz"):
            # No zone-less type: naive values are stored as UTC wall time, as without a descriptor.
            return f"DateTime64({6 if precision is None else min(max(precision, 0), 6)}, 'UTC')"
        if declared.kind == "numeric" and precision is not None and precision <= 76:
            return f"Decimal({precision}, {declared.scale or 0})"
        # char(n)/varchar(n) are String: ClickHouse has no character type, and FixedString pads with NUL
        # bytes, not blanks (the extract already dropped char padding).
        return "UUID" if declared.kind == "uuid" else None

    def arrow_sql_type(self, field: pa.Field, *, is_key: bool = False) -> str:
        import pyarrow as pa

        kind = field.type
        if pa.types.is_dictionary(kind):
            return f"LowCardinality({self.sql_type(pa.field(field.name, kind.value_type), is_key=is_key)})"
        if pa.types.is_boolean(kind):
            return "Bool"
        if pa.types.is_integer(kind):
            return f"{'U' if pa.types.is_unsigned_integer(kind) else ''}Int{kind.bit_width}"
        if pa.types.is_floating(kind):
            return "Float64" if kind.bit_width == 64 else "Float32"
        if pa.types.is_decimal(kind):
            return f"Decimal({kind.precision}, {kind.scale})"
        if pa.types.is_timestamp(kind):
            digits = next(digits for digits, unit in PRECISION_UNITS if unit == kind.unit)
            return f"DateTime64({digits}, 'UTC')"
        if pa.types.is_date(kind):
            return "Date32"
        if pa.types.is_fixed_size_binary(kind):
            return f"FixedString({kind.byte_width})"
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            return f"Array({self.sql_type(pa.field(field.name, kind.value_type))})"
        if pa.types.is_duration(kind):
            return "Int64"
        # Strings, binary, JSON text, times of day and anything else are stored as String.
        return "String"


__all__ = ["PRECISION_UNITS", "ClickHouseTypes"]
