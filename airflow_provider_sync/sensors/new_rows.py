"""NewRowsSensor: wait until a sync's source has rows past the stored watermark."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


def source_has_new_rows(table_spec: dict[str, Any], watermark: dict[str, Any] | None) -> bool:
    """Resolve the source connection and probe it (runs in a worker or in the triggerer)."""
    from airflow.sdk import BaseHook

    from airflow_provider_sync.config.resolved import load_table_spec
    from airflow_provider_sync.core.watermark import Watermark
    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.pipeline.probe import has_rows_past
    from airflow_provider_sync.pipeline.specs import extract_spec_for

    table = load_table_spec(table_spec)
    connection = ConnectionInfo.from_airflow(BaseHook.get_connection(table.source.conn_id))
    spec = extract_spec_for(table, connection)
    lower = Watermark.from_json(watermark, spec.strategy, spec.source_timezone) if watermark else None
    return has_rows_past(spec, lower)


class NewRowsSensor(BaseSensorOperator):
    """Succeeds when the source has rows after the table's watermark.

    With ``deferrable=True`` the wait happens in the triggerer (:class:`NewRowsTrigger`), freeing the worker
    slot; otherwise it pokes every ``poke_interval`` seconds like any sensor.
    """

    template_fields: Sequence[str] = ("table_spec",)
    ui_color = "#f0e6fa"

    def __init__(
        self,
        *,
        table_spec: dict[str, Any],
        pipeline_info: dict[str, Any],
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 60)
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.table_spec = table_spec
        self.pipeline_info = pipeline_info
        self.deferrable = deferrable

    def _watermark(self) -> dict[str, Any] | None:
        """The stored watermark, checked against the table's strategy: a damaged one fails the sensor
        (naming the Variable) instead of waiting forever or treating the table as never synced."""
        from airflow_provider_sync.watermarks import parse_stored, read_in_task

        dag_id, table = str(self.pipeline_info["dag_id"]), str(self.table_spec["name"])
        stored = read_in_task(dag_id, table)
        if stored is not None:
            from airflow_provider_sync.config.resolved import load_table_spec

            incremental = load_table_spec(self.table_spec).incremental
            parse_stored(dag_id, table, stored, incremental.strategy, incremental.source_timezone)
        return stored

    def poke(self, context: Context) -> bool:
        return source_has_new_rows(self.table_spec, self._watermark())

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        watermark = self._watermark()
        if source_has_new_rows(self.table_spec, watermark):
            return None
        from airflow_provider_sync.triggers.new_rows import NewRowsTrigger

        self.defer(
            trigger=NewRowsTrigger(
                table_spec=self.table_spec, watermark=watermark, poke_interval=float(self.poke_interval)
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) if self.timeout else None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        self.log.info("New rows past the watermark: %s", event)
