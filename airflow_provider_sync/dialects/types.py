"""Small value types shared by every dialect (no driver, no pyarrow import at module level)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.core.partitions import KeySlice

    from .declared import DeclaredType

ParamStyle = Literal["qmark", "format", "pyformat", "named", "numeric"]

#: Field metadata key marking an Arrow string column whose values are JSON documents.
JSON_METADATA_KEY = b"sync.type"
JSON_METADATA_VALUE = b"json"


@dataclass(frozen=True)
class TableRef:
    """A table, optionally inside a schema (PostgreSQL schema, MySQL database, SQLite attached database)."""

    name: str
    schema: str | None = None

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    @classmethod
    def parse(cls, qualified: str) -> TableRef:
        """``"schema.table"`` → ``TableRef("table", "schema")``; the last dot separates the name."""
        schema, name = split_table_name(qualified)
        return cls(name, schema)


def split_table_name(qualified: str) -> tuple[str | None, str]:
    """``"schema.table"`` → ``("schema", "table")``; ``"table"`` → ``(None, "table")``."""
    schema, _, name = qualified.rpartition(".")
    return (schema or None), name


@dataclass(frozen=True)
class Query:
    """SQL text plus its bound parameters, in the driver's parameter style."""

    sql: str
    params: list[Any] | dict[str, Any] = field(default_factory=list)


@dataclass(frozen=True)
class Column:
    """One column as the database declares it, with the Arrow type the engine reads it as."""

    name: str
    db_type: str
    arrow_type: pa.DataType
    nullable: bool = True
    declared: DeclaredType | None = None
    """The portable declared type (set by the extract from :meth:`Dialect.declared_type`), which the
    staged schema carries in field metadata so targets can recreate the column faithfully."""


@dataclass(frozen=True)
class KeysetBounds:
    """Which rows one extraction reads, in ``(cursor, key...)`` order.

    Lower bound (leave ``after_cursor`` as None for none):
      * with ``after_keys``: ``(cursor, key...) > (after_cursor, after_keys...)`` - the keyset resume point;
      * without: ``cursor > after_cursor``, or ``cursor >= after_cursor`` when ``after_inclusive``
        (a lag window or the start of a data interval).
    Upper bounds: ``cursor <= upto_cursor`` (the high-water mark, or a configured end value) and
    ``cursor < before_cursor`` (the exclusive end of a data interval).
    ``key_slice``: only the rows of one partition (``low <= column < high``, or NULL in the first).
    """

    after_cursor: Any = None
    after_keys: tuple[Any, ...] | None = None
    after_inclusive: bool = False
    upto_cursor: Any = None
    before_cursor: Any = None
    key_slice: KeySlice | None = None


@dataclass(frozen=True)
class LoadCounts:
    """What a load did to the target."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def written(self) -> int:
        return self.inserted + self.updated


class Binder:
    """Collects parameter values while SQL is generated and renders placeholders in the driver's style."""

    def __init__(self, style: ParamStyle) -> None:
        self.style = style
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        number = len(self.values)
        if self.style == "qmark":
            return "?"
        if self.style == "format":
            return "%s"
        if self.style == "pyformat":
            return f"%(p{number})s"
        if self.style == "named":
            return f":p{number}"
        return f":{number}"

    def query(self, sql: str) -> Query:
        if self.style in ("pyformat", "named"):
            return Query(sql, {f"p{i}": v for i, v in enumerate(self.values, start=1)})
        return Query(sql, list(self.values))
