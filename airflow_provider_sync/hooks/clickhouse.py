"""ClickHouseHook: the ``clickhouse`` connection type this provider registers with Airflow."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook


class ClickHouseHook(BaseHook):
    """Connects to ClickHouse over HTTP(S) with clickhouse-connect.

    Connection fields: host, port (8123 / 8443), login, password, schema (the database). Extra:
    ``{"secure": true}`` for HTTPS, ``{"settings": {...}}`` for session settings, or ``{"dsn": "..."}`` to
    pass a clickhouse-connect DSN directly (for example ``chdb:///path`` for the embedded engine).
    """

    conn_name_attr = "clickhouse_conn_id"
    default_conn_name = "clickhouse_default"
    conn_type = "clickhouse"
    hook_name = "ClickHouse"

    def __init__(self, clickhouse_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clickhouse_conn_id = clickhouse_conn_id

    def get_conn(self) -> Any:
        """A DB-API-like connection (the one the sync engine uses) wrapping a clickhouse-connect client."""
        from airflow_provider_sync.dialects import get_dialect
        from airflow_provider_sync.dialects.connection import ConnectionInfo

        info = ConnectionInfo.from_airflow(self.get_connection(self.clickhouse_conn_id))
        return get_dialect("clickhouse").connect(info)

    def get_client(self) -> Any:
        """The underlying ``clickhouse_connect`` client, for queries outside the sync engine."""
        return self.get_conn().client

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": [],
            "relabeling": {"schema": "Database"},
            "placeholders": {"port": "8123", "extra": '{"secure": false, "settings": {}}'},
        }
