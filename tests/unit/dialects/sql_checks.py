"""Checking generated SQL without a server: a strict sqlglot parse, a connection that records statements."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import sqlglot
from sqlglot import exp

# Statements sqlglot has no model for; it reads them as an opaque Command. Only these may parse that way.
OPAQUE_STATEMENTS = (
    re.compile(r"^SET TRANSACTION ISOLATION LEVEL SNAPSHOT$"),
    re.compile(r"^CREATE PRIVATE TEMPORARY TABLE \"ORA\$PTT_\w+\" ON COMMIT DROP DEFINITION AS SELECT "),
    re.compile(r"^ALTER SESSION SET TIME_ZONE = 'UTC'$"),
    re.compile(r"^EXCHANGE TABLES \S+ AND \S+$"),
    re.compile(r"^RENAME TABLE \S+ TO \S+$"),
)
_FORMAT_MARKER = re.compile(r"%s")


def parse_sql(sql: str, dialect: str) -> exp.Expression:
    """Parse one generated statement strictly in ``dialect``; ``%s`` markers (pymssql) are read as ``?``.

    Statements sqlglot models must parse to a real expression whose rendering parses back the same;
    statements it does not model must be one of :data:`OPAQUE_STATEMENTS`.
    """
    text = _FORMAT_MARKER.sub("?", sql) if dialect == "tsql" else sql
    if any(pattern.match(sql) for pattern in OPAQUE_STATEMENTS):
        tree = sqlglot.parse_one(text, read=dialect, error_level=sqlglot.ErrorLevel.WARN)
        assert isinstance(tree, (exp.Command, exp.Set)), f"expected an opaque statement: {sql}"
        return tree
    tree = sqlglot.parse_one(text, read=dialect, error_level=sqlglot.ErrorLevel.RAISE)
    assert not isinstance(tree, exp.Command), f"sqlglot could not model: {sql}"
    rendered = tree.sql(dialect=dialect)
    again = sqlglot.parse_one(rendered, read=dialect, error_level=sqlglot.ErrorLevel.RAISE)
    assert again.sql(dialect=dialect) == rendered, f"sqlglot does not read its own rendering of: {sql}"
    return tree


class RecordingCursor:
    def __init__(self, owner: RecordingConnection) -> None:
        self.owner = owner
        self.rowcount = -1
        self.arraysize = 100
        self.prefetchrows = 2
        self._rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, params: Any = None, **options: Any) -> None:
        self.owner.statements.append((sql, params))
        self._rows, self.rowcount = self.owner.answer(sql)

    def executemany(self, sql: str, rows: Sequence[Any]) -> None:
        self.owner.statements.append((sql, list(rows)))
        self.rowcount = len(rows)

    def setinputsizes(self, *args: Any, **kwargs: Any) -> None:
        self.owner.input_sizes.append(args or kwargs)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    def close(self) -> None:
        pass


class RecordingConnection:
    """Records every statement; answers queries from ``replies`` (first matching substring wins)."""

    def __init__(self, replies: dict[str, tuple[list[tuple[Any, ...]], int]] | None = None) -> None:
        self.replies = replies or {}
        self.statements: list[tuple[str, Any]] = []
        self.input_sizes: list[Any] = []
        self.rollbacks = 0

    def answer(self, sql: str) -> tuple[list[tuple[Any, ...]], int]:
        for fragment, (rows, rowcount) in self.replies.items():
            if fragment in sql:
                return list(rows), rowcount
        return [], 0

    def cursor(self) -> RecordingCursor:
        return RecordingCursor(self)

    def rollback(self) -> None:
        self.rollbacks += 1

    def commit(self) -> None:
        pass
