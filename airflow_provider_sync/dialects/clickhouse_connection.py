"""A DB-API-shaped handle over a clickhouse-connect client, so the shared engine code can drive ClickHouse.

ClickHouse has no multi-statement transactions: ``commit`` writes the append-ledger rows held back during the
load (so the ledger never claims data that was not stored) and ``rollback`` discards them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .types import Query

_ROW_RETURNING = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS)\b", re.IGNORECASE)


@dataclass(frozen=True)
class LedgerInsert(Query):
    """An append-ledger row, held back by :class:`ClickHouseConnection` until ``commit``."""

    scope: str = ""


class ClickHouseCursor:
    """The part of a DB-API cursor the engine uses, over a clickhouse-connect client."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._rows: list[tuple[Any, ...]] = []
        self._position = 0
        self.rowcount = -1
        self.description: list[tuple[Any, ...]] | None = None

    def execute(self, sql: str, params: Any = None) -> None:
        parameters = bind_values(params) if params else None
        if not parameters:
            # Identifiers double '%' for parameter formatting, which only happens when parameters are sent.
            sql = sql.replace("%%", "%")
        if _ROW_RETURNING.match(sql):
            result = self._client.query(sql, parameters=parameters)
            self._rows = [tuple(row) for row in result.result_rows]
            self.description = [
                (name, kind, None, None, None, None, None)
                for name, kind in zip(result.column_names, result.column_types, strict=True)
            ]
            self.rowcount = len(self._rows)
        else:
            summary = self._client.command(sql, parameters=parameters)
            self._rows, self.description = [], None
            self.rowcount = int(getattr(summary, "written_rows", 0) or 0)
        self._position = 0

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self.fetchmany(1)
        return rows[0] if rows else None

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        rows = self._rows[self._position : self._position + size]
        self._position += len(rows)
        return rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.fetchmany(len(self._rows))

    def close(self) -> None:
        self._rows = []


class ClickHouseConnection:
    """A DB-API-shaped handle over a clickhouse-connect client. ``commit``/``rollback`` do nothing: every
    ClickHouse statement is atomic on its own and the load modes are idempotent (see the module docstring)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.insert_scope: str | None = None
        self.inserts_in_scope = 0
        self.pending_ledger_rows: list[Query] = []

    def cursor(self) -> ClickHouseCursor:
        return ClickHouseCursor(self.client)

    def commit(self) -> None:
        for query in self.pending_ledger_rows:
            self.cursor().execute(query.sql, query.params)
        self.rollback()

    def rollback(self) -> None:
        self.pending_ledger_rows = []
        self.insert_scope = None
        self.inserts_in_scope = 0

    def close(self) -> None:
        self.client.close()


def bind_values(params: Any) -> Any:
    """clickhouse-connect renders plain datetimes to the second; wrap them so microseconds survive."""
    from clickhouse_connect.driver.binding import DT64Param

    def convert(value: Any) -> Any:
        if isinstance(value, datetime):
            if value.utcoffset() is not None:
                value = value.astimezone(timezone.utc).replace(tzinfo=None)
            return DT64Param(value)
        return value

    if isinstance(params, dict):
        return {name: convert(value) for name, value in params.items()}
    return [convert(value) for value in params]
