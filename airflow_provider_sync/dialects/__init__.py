"""Database dialects, looked up by Airflow connection type.

The registry is data: ``conn_type -> "module:Class"``. Modules are imported only when a dialect is asked
for, so importing this package costs nothing at DAG-parse time.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

from airflow_provider_sync.errors import MissingDriverError, TerminalError

if TYPE_CHECKING:
    from .base import Dialect

DIALECTS: dict[str, str] = {
    "postgres": "airflow_provider_sync.dialects.postgres:PostgresDialect",
    "postgresql": "airflow_provider_sync.dialects.postgres:PostgresDialect",
    "mysql": "airflow_provider_sync.dialects.mysql:MySQLDialect",
    "mariadb": "airflow_provider_sync.dialects.mysql:MySQLDialect",
    "sqlite": "airflow_provider_sync.dialects.sqlite:SQLiteDialect",
    "mssql": "airflow_provider_sync.dialects.mssql:MSSQLDialect",
    "oracle": "airflow_provider_sync.dialects.oracle:OracleDialect",
    "clickhouse": "airflow_provider_sync.dialects.clickhouse:ClickHouseDialect",
}

#: The pip extra that brings each dialect's driver.
DRIVER_EXTRAS: dict[str, tuple[str, str]] = {
    "postgres": ("psycopg", "postgres"),
    "mysql": ("MySQLdb", "mysql"),
    "mssql": ("pymssql", "mssql"),
    "oracle": ("oracledb", "oracle"),
    "clickhouse": ("clickhouse_connect", "clickhouse"),
    "kafka": ("confluent_kafka", "kafka"),
}


def get_dialect(conn_type: str) -> Dialect:
    """The dialect for an Airflow connection type (``postgres``, ``mysql``, ``sqlite``, ...)."""
    name = (conn_type or "").strip().lower()
    target = DIALECTS.get(name)
    if target is None:
        allowed = ", ".join(sorted(DIALECTS))
        raise TerminalError(f"connection type {conn_type!r} is not supported; use one of: {allowed}")
    return _load(target)


@cache
def _load(target: str) -> Dialect:
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("airflow_provider_sync"):
            raise TerminalError(
                f"dialect module {module_name} is registered but not "
                "part of this installation; upgrade airflow-provider-sync"
            ) from exc
        raise
    dialect: Dialect = getattr(module, class_name)()
    return dialect


def require_driver(dialect_name: str) -> object:
    """Import a dialect's driver module, or raise MissingDriverError naming the pip extra."""
    module, extra = DRIVER_EXTRAS[dialect_name]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDriverError(dialect_name, extra, module) from exc


__all__ = ["DIALECTS", "DRIVER_EXTRAS", "get_dialect", "require_driver"]
