"""Table layout options of ClickHouse targets, and the check of ``partition_by`` expressions.

Kept apart from the dialect so that validating a pipeline file (which checks ``partition_by``) imports
nothing but this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class ClickHouseTableOptions:
    """How :meth:`ClickHouseDialect.create_table_sql` lays out a target table.

    ``engine`` defaults to ``ReplacingMergeTree`` when the table has keys (upsert by key) and ``MergeTree``
    otherwise. ``version_column`` (a numeric or timestamp column, typically the cursor) decides which row
    of a key survives merges; without it the last inserted wins. ``partition_by`` is a ClickHouse expression
    made of column names, integers and function calls, such as ``toYYYYMM(created_at)``. ``low_cardinality``
    lists string columns stored as ``LowCardinality(String)``.
    """

    #: The connection type whose tables these options describe.
    dialect: ClassVar[str] = "clickhouse"

    engine: str | None = None
    version_column: str | None = None
    partition_by: str | None = None
    low_cardinality: tuple[str, ...] = ()
    is_deleted_column: str | None = None
    """A ``UInt8`` column of ``ReplacingMergeTree(version, is_deleted)``: a row with 1 deletes its key at
    merge time (and from ``FINAL`` reads at once)."""


_PARTITION_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<number>\d+)|(?P<mark>[(),]))\s*")
PARTITION_HELP = (
    "column names, integers and function calls over them, e.g. toYYYYMM(created_at) or "
    "(toDate(occurred_at), region)"
)


def partition_columns(expression: str) -> list[str]:
    """The columns a ``partition_by`` expression reads; ValueError unless the expression is only column
    names, integers and function calls over them (nothing that could end the DDL statement or run a query)."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(expression):
        match = _PARTITION_TOKEN.match(expression, position)
        if match is None or match.lastgroup is None:
            raise ValueError(f"partition_by {expression!r} is not allowed: use {PARTITION_HELP}")
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    columns: list[str] = []
    index = 0

    def take(expected: str) -> None:
        nonlocal index
        if index >= len(tokens) or tokens[index][1] != expected:
            raise ValueError(f"partition_by {expression!r} is not allowed: use {PARTITION_HELP}")
        index += 1

    def term() -> None:
        nonlocal index
        kind, value = tokens[index] if index < len(tokens) else ("end", "")
        index += 1
        if kind == "name" and index < len(tokens) and tokens[index][1] == "(":
            arguments(allow_empty=True)  # a function call
        elif kind == "name":
            columns.append(value)
        elif value == "(":
            index -= 1
            arguments(allow_empty=False)  # a tuple
        elif kind != "number":
            raise ValueError(f"partition_by {expression!r} is not allowed: use {PARTITION_HELP}")

    def arguments(*, allow_empty: bool) -> None:
        nonlocal index
        take("(")
        if allow_empty and index < len(tokens) and tokens[index][1] == ")":
            index += 1
            return
        term()
        while index < len(tokens) and tokens[index][1] == ",":
            index += 1
            term()
        take(")")

    term()
    if index != len(tokens):
        raise ValueError(f"partition_by {expression!r} is not allowed: use {PARTITION_HELP}")
    return columns


__all__ = ["PARTITION_HELP", "ClickHouseTableOptions", "partition_columns"]
