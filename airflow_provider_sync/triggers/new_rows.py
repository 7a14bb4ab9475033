"""NewRowsTrigger: polls a source from the triggerer until it holds rows past the watermark."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class NewRowsTrigger(BaseTrigger):
    """Fires once the source table of a sync has a row after the stored watermark.

    Only the connection id and the table's settings travel in the trigger's kwargs; the connection is
    resolved inside the triggerer, so no credentials are stored with the trigger.
    """

    def __init__(
        self, *, table_spec: dict[str, Any], watermark: dict[str, Any] | None, poke_interval: float = 60.0
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.table_spec = table_spec
        self.watermark = watermark
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"table_spec": self.table_spec, "watermark": self.watermark, "poke_interval": self.poke_interval},
        )

    def _check(self) -> bool:
        from airflow_provider_sync.sensors.new_rows import source_has_new_rows

        return source_has_new_rows(self.table_spec, self.watermark)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            if await asyncio.to_thread(self._check):
                yield TriggerEvent({"status": "new_rows"})  # type: ignore[no-untyped-call]
                return
            self.log.info("No rows past the watermark yet; checking again in %ss", self.poke_interval)
            await asyncio.sleep(self.poke_interval)
