"""Declared types in SQL: parse a database's spelling into a :class:`~airflow_provider_sync.core.declared.
DeclaredType`, and render a staged field's descriptor in a dialect's DDL. The descriptor itself, and how
it rides in field metadata, live in :mod:`airflow_provider_sync.core.declared`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from airflow_provider_sync.core.declared import (
    DECLARED_KEYS,
    KINDS,
    SIZED_TEXT,
    DeclaredType,
    declared_of,
    with_declared,
    without_length,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from .base import Dialect

__all__ = [
    "DECLARED_KEYS",
    "KINDS",
    "SIZED_TEXT",
    "DeclaredType",
    "declared_of",
    "declared_sql",
    "parse_declared",
    "with_declared",
    "without_length",
]

_ARGS = re.compile(r"\(\s*(\d+|max)\s*(?:(?:byte|char)\s*)?(?:,\s*(-?\d+)\s*)?\)")
_PLAIN = re.compile(r"\([^)]*\)")


def declared_sql(dialect: Dialect, field: pa.Field, *, is_key: bool = False) -> str | None:
    """``dialect``'s column type for the descriptor stored on ``field``, or None (no descriptor, or the
    database has no such type: the caller falls back to the Arrow-type mapping)."""
    declared = declared_of(field)
    return None if declared is None else dialect.declared_sql(declared, field, is_key=is_key)


def parse_declared(db_type: str) -> DeclaredType | None:
    """The descriptor of a declared type in the SQL spellings most databases share (PostgreSQL, MySQL,
    SQLite, SQL Server, Oracle); None for types the Arrow type describes well enough (integers, floats,
    unbounded text) or does not know. Dialects override the spellings whose meaning differs."""
    name = " ".join(db_type.lower().split())
    match = _ARGS.search(name)
    first = match.group(1) if match else None
    size = int(first) if first and first.isdigit() else None
    second = int(match.group(2)) if match and match.group(2) else None
    base = _PLAIN.sub("", name).replace(" unsigned", "").strip()
    if base.endswith("[]"):
        return None
    zone = "with time zone" in base or base in ("timestamptz", "datetimeoffset")
    head = base.split(" ")[0]
    if head in ("char", "character", "nchar", "bpchar") and "varying" not in base:
        return DeclaredType("char", size if size is not None else 1)
    if head in ("varchar", "varchar2", "nvarchar", "nvarchar2") or "varying" in base:
        return DeclaredType("varchar", size)
    if head in ("numeric", "decimal", "dec", "number"):
        if head == "number" and size is None:
            return None
        return DeclaredType("numeric", precision=size, scale=second if size is not None else None)
    if head in ("timestamp", "timestamptz", "datetime", "datetime2", "datetimeoffset"):
        if "local time zone" in base:
            return DeclaredType("timestamptz", precision=size)
        return DeclaredType("timestamptz" if zone else "timestamp", precision=size)
    if head in ("time", "timetz"):
        return None if zone or head == "timetz" else DeclaredType("time", precision=size)
    simple = {
        "date": "date",
        "boolean": "boolean",
        "bool": "boolean",
        "json": "json",
        "jsonb": "jsonb",
        "uuid": "uuid",
        "uniqueidentifier": "uuid",
    }
    if base in simple:
        return DeclaredType(simple[base])
    if head in ("varbinary", "binary", "raw") and base != "binary_float" and base != "binary_double":
        return DeclaredType("bytes", length=size)
    if head in ("bytea", "blob", "tinyblob", "mediumblob", "longblob", "image") or base == "long raw":
        return DeclaredType("bytes")
    return None
