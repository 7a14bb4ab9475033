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

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

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
