"""The key-rotation operator: re-encrypts a target table's encrypted columns under the keyring's primary key.

The rotation itself (keyset pages, re-encryption, guarded UPDATEs) lives in ``pipeline/rotation.py``; this
module only turns the task's arguments and Airflow connections into a call to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

# Re-exported: callers of the rotation engine that predate pipeline/rotation.py import it from here.
from airflow_provider_sync.pipeline.rotation import RotationResult, page_query, rotate_table_keys

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["RotateKeysOperator", "RotationResult", "page_query", "rotate_table_keys"]


class RotateKeysOperator(BaseOperator):
    """Re-encrypts a table's encrypted columns under the primary key of a keyring connection.

    ``columns`` maps each encrypted column to its context, or to None for the encrypt step's default
    ``"<table>.<column>"`` (``table`` as written under ``target.table`` in the pipeline file)."""

    template_fields = ("conn_id", "table", "keyring_conn_id")
    ui_color = "#e2e7f7"

    def __init__(
        self,
        *,
        conn_id: str,
        table: str,
        columns: Mapping[str, str | None],
        keyring_conn_id: str,
        batch_size: int = 5_000,
        key_columns: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id, self.table, self.keyring_conn_id = conn_id, table, keyring_conn_id
        self.columns = dict(columns)
        self.batch_size, self.key_columns = batch_size, list(key_columns or [])

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk import BaseHook

        from airflow_provider_sync.core.encrypt import field_context
        from airflow_provider_sync.dialects.connection import ConnectionInfo
        from airflow_provider_sync.dialects.types import TableRef, split_table_name
        from airflow_provider_sync.operators.steps import keyring_from_connection

        schema, name = split_table_name(self.table)
        contexts = {column: ctx or field_context(self.table, column) for column, ctx in self.columns.items()}
        info = ConnectionInfo.from_airflow(BaseHook.get_connection(self.conn_id))
        result = rotate_table_keys(
            info,
            TableRef(name, schema),
            contexts,
            keyring_from_connection(self.keyring_conn_id),
            batch_size=self.batch_size,
            key_columns=self.key_columns or None,
            logger=self.log,
        )
        self.log.info("rotation of %s done: %s", self.table, result.to_json())
        return result.to_json()
