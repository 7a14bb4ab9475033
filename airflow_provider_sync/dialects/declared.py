"""The source column's declared type, carried portably in the staged Arrow schema's field metadata.

The Arrow type alone loses what a target needs to recreate a column faithfully: ``char(10)`` and
``varchar(44)`` are both strings, ``timestamp(3)`` and ``timestamp(6)`` both microsecond timestamps, a
``uuid`` is text. The extract therefore records a :class:`DeclaredType` next to each field (metadata keys
``sync.type``, ``sync.length``, ``sync.precision``, ``sync.scale``), and each target dialect turns it into its
own DDL, falling back to the Arrow-type mapping when there is no descriptor or the database lacks the type.

``sync.type`` values: ``char``, ``varchar``, ``numeric``, ``timestamp``, ``timestamptz``, ``time``,
``date``, ``boolean``, ``json``, ``jsonb``, ``bytes``, ``uuid``. Integer and floating-point widths need no
descriptor: the Arrow type already says them. ``sync.type = json`` doubles as the marker of JSON text that
existed before declared types were carried, so old manifests keep working.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from .base import Dialect

TYPE_KEY = b"sync.type"
LENGTH_KEY = b"sync.length"
PRECISION_KEY = b"sync.precision"
SCALE_KEY = b"sync.scale"
DECLARED_KEYS = (TYPE_KEY, LENGTH_KEY, PRECISION_KEY, SCALE_KEY)

KINDS = frozenset(
    {"char", "varchar", "numeric", "timestamp", "timestamptz", "time", "date", "boolean", "json", "jsonb",
     "bytes", "uuid"}
)  # fmt: skip
#: Kinds whose values are text whose length a masked or encrypted value no longer respects.
SIZED_TEXT = frozenset({"char", "varchar"})

_ARGS = re.compile(r"\(\s*(\d+|max)\s*(?:(?:byte|char)\s*)?(?:,\s*(-?\d+)\s*)?\)")
_PLAIN = re.compile(r"\([^)]*\)")


@dataclass(frozen=True)
class DeclaredType:
    """A portable description of a declared column type (see the module docstring)."""

    kind: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None

    def metadata(self) -> dict[bytes, bytes]:
        data = {TYPE_KEY: self.kind.encode()}
        sizes = ((LENGTH_KEY, self.length), (PRECISION_KEY, self.precision), (SCALE_KEY, self.scale))
        for key, value in sizes:
            if value is not None:
                data[key] = str(value).encode()
        return data

    def fits(self, arrow_type: pa.DataType) -> bool:
        """True when values read as ``arrow_type`` can carry this declared type (a descriptor must never
        contradict the data, e.g. after a cast)."""
        import pyarrow as pa

        checks = {
            "numeric": pa.types.is_decimal,
            "timestamp": lambda t: pa.types.is_timestamp(t) and t.tz is None,
            "timestamptz": lambda t: pa.types.is_timestamp(t) and t.tz is not None,
            "time": pa.types.is_time,
            "date": pa.types.is_date,
            "boolean": pa.types.is_boolean,
            "bytes": lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t),
        }
        check = checks.get(self.kind)
        if check is not None:
            return bool(check(arrow_type))
        return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def declared_of(field: pa.Field) -> DeclaredType | None:
    """The descriptor stored on ``field``, or None (no metadata, or a kind this release does not know)."""
    metadata = field.metadata or {}
    kind = metadata.get(TYPE_KEY, b"").decode()
    if kind not in KINDS:
        return None

    def number(key: bytes) -> int | None:
        raw = metadata.get(key)
        return int(raw) if raw is not None and raw.lstrip(b"-").isdigit() else None

    declared = DeclaredType(kind, number(LENGTH_KEY), number(PRECISION_KEY), number(SCALE_KEY))
    return declared if declared.fits(field.type) else None


def with_declared(field: pa.Field, declared: DeclaredType | None) -> pa.Field:
    """``field`` carrying ``declared`` (other metadata kept, earlier declared keys replaced)."""
    kept = {k: v for k, v in (field.metadata or {}).items() if k not in DECLARED_KEYS}
    if declared is not None and declared.fits(field.type):
        kept.update(declared.metadata())
    return field.with_metadata(kept)


def without_length(field: pa.Field) -> pa.Field:
    """``field`` whose values were rewritten (masked, encrypted): a ``char(n)``/``varchar(n)`` bound would
    no longer hold, so the descriptor goes; other declared kinds stay only while the type is unchanged."""
    declared = declared_of(field)
    if declared is None or declared.kind in SIZED_TEXT:
        return with_declared(field, None)
    return field


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
