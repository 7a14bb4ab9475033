"""YAML model of the ``audit:`` section: where the audit trail (one row per step and run) is written."""

from __future__ import annotations

from pydantic import Field

from airflow_provider_sync.config.base import StrictModel
from airflow_provider_sync.config.identifiers import ConnectionId, Identifier

DEFAULT_AUDIT_TABLE = "sync_audit"


class AuditConfig(StrictModel):
    """The audit table: who moved which rows, when, with which configuration, and how it ended."""

    enabled: bool = Field(
        default=True, description="Write audit rows (turn off only for throw-away pipelines)."
    )
    conn_id: ConnectionId | None = Field(
        default=None,
        description="Airflow connection of the database holding the audit table (default: the target's).",
    )
    schema_: Identifier | None = Field(
        default=None,
        alias="schema",
        description="Schema of the audit table (default: the connection's default).",
    )
    table: Identifier = Field(
        default=DEFAULT_AUDIT_TABLE, description="Audit table name; created if missing."
    )
