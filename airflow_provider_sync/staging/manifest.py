"""The manifest: the small, versioned JSON document that travels by XCom from step to step.

It names the staged files and says what they hold (row count, Arrow schema, the watermark range and the
last ``(cursor, key)`` extracted); the rows themselves never go through XCom. ``parts`` records, per file,
the rows, bytes and SHA-256 its writer wrote, so every reader can refuse a file that changed since.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

from .verify import StagedFileError, StagedPart

if TYPE_CHECKING:
    import pyarrow as pa

# 2: per-file rows, bytes and SHA-256 in ``parts``; a version-1 manifest cannot vouch for its files.
MANIFEST_VERSION = 2


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
    ``high_water_mark`` is the encoded hwm taken at extraction. ``parts`` follows ``files``: one
    :class:`~.verify.StagedPart` (as JSON) per file; :meth:`staged_parts` checks they add up.
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
    parts: list[dict[str, Any]] = field(default_factory=list)
    version: int = MANIFEST_VERSION

    def __post_init__(self) -> None:
        # Accept StagedPart objects (as a StageWriter lists them); keep the JSON form.
        parts = [p.to_json() if isinstance(p, StagedPart) else p for p in self.parts]
        object.__setattr__(self, "parts", parts)

    def staged_parts(self) -> list[StagedPart]:
        """The files with what each must hold; raises :class:`~.verify.StagedFileError` when the manifest
        cannot vouch for its files (no or malformed entries, or counts that do not add up)."""
        where = f"manifest of step {self.step!r} (table {self.table}, run {self.run_id})"
        if len(self.parts) != len(self.files):
            raise StagedFileError(
                f"{where} lists {len(self.files)} staged file(s) but row counts and checksums for "
                f"{len(self.parts)}; it was not written by a StageWriter of this release - clear the run's "
                "tasks from the extract on so the rows are staged again"
            )
        parts = [StagedPart.from_json(p, f"{where}, part {i}") for i, p in enumerate(self.parts)]
        for index, (url, part) in enumerate(zip(self.files, parts, strict=True)):
            if part.file != url:
                raise StagedFileError(f"{where}: file {index} is {url} but its checksum is for {part.file}")
        total = sum(part.rows for part in parts)
        if total != self.rows:
            raise StagedFileError(
                f"{where} says {self.rows:,} rows but its files were written with {total:,}; clear the run's "
                "tasks from the extract on so the rows are staged again"
            )
        return parts

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
        files: Sequence[str | StagedPart],
        rows: int,
        schema: pa.Schema | str,
        record: StepRecord | None = None,
        *,
        parts: Sequence[StagedPart] | None = None,
        **counters: int,
    ) -> Manifest:
        """The manifest a following step writes: same run, range and watermark, new files and schema,
        one more history record. ``files`` are the :class:`StagedPart` a StageWriter lists (or URLs with
        ``parts``); the same URLs as this manifest's keep its parts."""
        history = [*self.history, record or StepRecord(step, self.rows, rows)]
        urls = [f.file if isinstance(f, StagedPart) else f for f in files]
        if parts is None:
            given = [f for f in files if isinstance(f, StagedPart)]
            parts = given if len(given) == len(urls) else (self.staged_parts() if urls == self.files else [])
        return replace(
            self,
            step=step,
            files=urls,
            parts=[p.to_json() for p in parts],
            rows=rows,
            schema=schema if isinstance(schema, str) else schema_to_text(schema),
            counters={**self.counters, **counters},
            history=history,
        )
