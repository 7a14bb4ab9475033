"""The manifest: the small, versioned JSON document that travels by XCom from step to step.

It names the staged files and says what they hold (row count, Arrow schema, the watermark range and the
last ``(cursor, key)`` extracted); the rows themselves never go through XCom.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

if TYPE_CHECKING:
    import pyarrow as pa

MANIFEST_VERSION = 1


def schema_to_text(schema: pa.Schema) -> str:
    """Base64 of the serialised Arrow IPC schema (keeps types, nullability and field metadata)."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def schema_from_text(text: str) -> pa.Schema:
    import pyarrow as pa

    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


@dataclass(frozen=True)
class StepRecord:
    """What one step did to the rows."""

    step: str
    rows_in: int
    rows_out: int
    rejected_by_rule: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """Staged data of one step, for one DAG run and table. JSON-serialisable through :meth:`to_json`.

    ``range`` is an :class:`~airflow_provider_sync.core.watermark.ExtractRange` as JSON; ``last`` is the
    watermark candidate ``{"cursor": ..., "key": [...]}`` (encoded values) or None when nothing was read;
    ``high_water_mark`` is the encoded hwm taken at extraction.
    """

    dag_id: str
    run_id: str
    table: str
    step: str
    files: list[str]
    rows: int
    schema: str
    range: dict[str, Any] | None = None
    high_water_mark: Any = None
    last: dict[str, Any] | None = None
    strategy: str | None = None
    cursor_column: str | None = None
    key_columns: list[str] = field(default_factory=list)
    source_timezone: str = "UTC"
    counters: dict[str, int] = field(default_factory=dict)
    history: list[StepRecord] = field(default_factory=list)
    version: int = MANIFEST_VERSION

    @property
    def arrow_schema(self) -> pa.Schema:
        return schema_from_text(self.schema)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        if not isinstance(data, dict):
            raise TerminalError(f"a manifest must be a JSON object, got {type(data).__name__}")
        version = data.get("version")
        if version != MANIFEST_VERSION:
            raise TerminalError(
                f"manifest version {version!r} is not supported (expected {MANIFEST_VERSION}); the run was "
                "staged by another release of airflow-provider-sync - clear the run and extract again"
            )
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        values["history"] = [StepRecord(**r) if isinstance(r, dict) else r for r in data.get("history", [])]
        return cls(**values)

    def next_step(
        self,
        step: str,
        files: list[str],
        rows: int,
        schema: pa.Schema | str,
        record: StepRecord | None = None,
        **counters: int,
    ) -> Manifest:
        """The manifest a following step writes: same run, range and watermark, new files and schema,
        one more history record."""
        history = [*self.history, record or StepRecord(step, self.rows, rows)]
        return replace(
            self,
            step=step,
            files=list(files),
            rows=rows,
            schema=schema if isinstance(schema, str) else schema_to_text(schema),
            counters={**self.counters, **counters},
            history=history,
        )
