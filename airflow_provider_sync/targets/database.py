"""Table databases: every connection type with a dialect in ``dialects/`` that no other kind claims."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_sync.targets.registry import TargetCapabilities, TargetKind, register_target

if TYPE_CHECKING:
    from airflow_provider_sync.dialects.connection import ConnectionInfo


def server_lineage(info: ConnectionInfo, table: str) -> tuple[str, str]:
    """``<type>://host:port`` and ``database.table``: a server-hosted database, named without credentials."""
    port = f":{info.port}" if info.port else ""
    name = ".".join(part for part in (info.database, table) if part)
    return f"{info.conn_type}://{info.host or 'localhost'}{port}", name


def table_database_lineage(info: ConnectionInfo, table: str) -> tuple[str, str]:
    from airflow_provider_sync.dialects import get_dialect

    if get_dialect(info.conn_type).capabilities.file_based:
        return f"{info.conn_type}://{info.database}", table
    return server_lineage(info, table)


DATABASE = register_target(
    TargetKind(
        name="database",
        summary="A table in PostgreSQL, MySQL/MariaDB, SQLite, MS SQL Server or Oracle, loaded in one "
        "transaction (append, replace or upsert).",
        capabilities=TargetCapabilities(),
        sink="airflow_provider_sync.pipeline.load:load_from_staging",
        lineage=table_database_lineage,
    )
)
