"""A fused table's stages streamed: extract → steps → load side by side, batches handed on in memory.

The extract runs on a thread and puts each batch it stages into a bounded channel
(:class:`~airflow_provider_sync.pipeline.stream.BatchChannel`); each step runs on a thread of its own,
takes its input schema and batches from the channel before it and puts what it makes into the channel after
it; the load runs on the task's own thread and takes the last channel's batches. Steps stage no file (the
extract still stages its own, for inspection); a step reads its upstream's manifest only once its last batch
went through, and hands on a manifest that lists no file, with the same rows, schema and history as its
staged one. At most two batches wait per channel, so memory stays bounded whatever the table's size.

Errors: a stage that fails fails the channel after it (the next stage raises that same error, and so on to
the load) and cancels the channel before it (the stage before stops at its next batch). The load commits
only once every stage before it finished, so any error rolls it back and the watermark is not moved; the
error the task raises is the first one a stage raised itself (not a stage stopping because another one
stopped). Every stage's audit row is written once the load ended: the audit table may live in the target
database, which the load's open transaction holds.

Rows a step rejects (``on_invalid: quarantine``, schema_map quarantine) are written, protected, to the
quarantine table while the load's transaction is open. That is safe where the load's lock is its own: on
PostgreSQL the load holds ``pg_advisory_xact_lock`` on the target's identity and row locks of the target and
owners tables, and the quarantine is another table on another connection, committing each write (as in a
per-step run). Where the load holds the database's only write lock (SQLite's ``BEGIN IMMEDIATE``: the
dialect's capability ``single_writer``), a step writing the target database would wait for the load, which
waits for the step. Holding rejected rows back until the load ended would need them spilled to disk to keep
memory bounded (a whole batch may be rejected), so instead such tables do not stream: a table whose steps
touch the target database (quarantine, keys per subject, lookups) into a one-writer database runs its stages
one after the other, as a fused table with staged files between steps always did.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import Context

    from airflow_provider_sync.audit.record import AuditRecord
    from airflow_provider_sync.config.resolved import TableSpec
    from airflow_provider_sync.operators.base import StepOutcome, SyncTableOperator
    from airflow_provider_sync.pipeline.stream import BatchChannel
    from airflow_provider_sync.staging.manifest import Manifest


class StepInput(Protocol):
    """The rows a step transforms: their schema, their batches, then the upstream manifest."""

    @property
    def schema(self) -> pa.Schema: ...

    def batches(self) -> Iterator[pa.RecordBatch]: ...

    def manifest(self) -> Manifest: ...


class StagedInput:
    """The upstream manifest (read before anything else) and its staged files, each checked."""

    def __init__(self, manifest: Manifest) -> None:
        self._manifest = manifest

    @property
    def schema(self) -> pa.Schema:
        return self._manifest.arrow_schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        from airflow_provider_sync.staging.files import read_manifest

        return read_manifest(self._manifest)

    def manifest(self) -> Manifest:
        return self._manifest


class StreamedInput:
    """The channel before a streamed step: its schema at once, its batches, and the upstream's manifest
    once the upstream finished (its error, if it failed)."""

    def __init__(self, channel: BatchChannel) -> None:
        self.channel = channel

    @property
    def schema(self) -> pa.Schema:
        return self.channel.schema()

    def batches(self) -> Iterator[pa.RecordBatch]:
        return iter(self.channel)

    def manifest(self) -> Manifest:
        from airflow_provider_sync.staging.manifest import Manifest

        return Manifest.from_json(self.channel.result())


def stream_batches(channel: BatchChannel, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> int:
    """Open ``channel`` with ``schema`` and put every non-empty batch into it, cast to ``schema`` as a
    staged file would be; returns the rows put."""
    channel.open(schema)
    rows = 0
    for batch in batches:
        if batch.schema != schema and batch.schema.names == schema.names:
            batch = batch.cast(schema)
        if batch.num_rows:
            channel.put(batch)
            rows += batch.num_rows
    return rows


def steps_stream(table: TableSpec, conn_type: str) -> bool:
    """Whether every step of ``table`` can take its batches from a channel, beside a load into a database
    of ``conn_type`` (see the module's docstring for one-writer databases)."""
    from airflow_provider_sync.dialects import get_dialect
    from airflow_provider_sync.operators.steps import step_operator

    one_writer = get_dialect(conn_type).capabilities.single_writer
    for entry in table.steps:
        ((step_type, body),) = entry.items()
        operator = step_operator(step_type)
        if not operator.streamable or (one_writer and operator.touches_target(body, table)):
            return False
    return True


def says_quarantine(settings: Any) -> bool:
    """Whether any policy in a step's settings (its defaults filled in) is ``quarantine``."""
    if isinstance(settings, dict):
        return any(says_quarantine(value) for value in settings.values())
    if isinstance(settings, (list, tuple)):
        return any(says_quarantine(value) for value in settings)
    return bool(settings == "quarantine")


class _Failures:
    """The errors the stages raised, first first, each once (a stage re-raises its upstream's error)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []

    def add(self, error: BaseException) -> None:
        with self._lock:
            if not any(seen is error for seen in self._errors):
                self._errors.append(error)

    def first(self, fallback: BaseException) -> BaseException:
        """The first error a stage raised itself, not one it raised because a later stage stopped."""
        from airflow_provider_sync.pipeline.stream import StreamCancelled

        with self._lock:
            return next((e for e in self._errors if not isinstance(e, StreamCancelled)), fallback)


class _Producer:
    """One stage before the load, run on its own thread: its channels, its audit record and its end."""

    def __init__(self, operator: SyncTableOperator, record: AuditRecord, into: BatchChannel) -> None:
        self.operator = operator
        self.record = record
        self.into = into
        self.outcome: StepOutcome | None = None
        self.error: BaseException | None = None

    def run(self, context: Context, failures: _Failures) -> None:
        try:
            self.outcome = self.operator.run(context)
        except BaseException as error:
            self.error = error
            failures.add(error)  # before the next stage can raise it as its own
            self.into.fail(error)
            if self.operator.stream is not self.into and self.operator.stream is not None:
                self.operator.stream.cancel()  # the stage before stops at its next batch
            return
        self.into.close(self.outcome.xcom)

    def write_audit(self, *, load_failed: bool) -> None:
        from airflow_provider_sync.operators.audit import write_audit

        if self.outcome is not None:
            write_audit(
                self.operator, self.record.succeeded(**self.outcome.audit), raise_errors=not load_failed
            )
            return
        error = self.error or RuntimeError(f"stage {self.operator.task_id} did not finish")
        write_audit(self.operator, self.record.failed(error), raise_errors=False)


def wire(stages: list[SyncTableOperator]) -> list[BatchChannel]:
    """Connect the extract, the steps and the load (``stages``, in order) with a channel between each two."""
    from airflow_provider_sync.pipeline.stream import BatchChannel

    channels = [BatchChannel() for _ in stages[:-1]]
    extract, *steps, load = stages
    extract.stream = channels[0]
    for index, step in enumerate(steps, start=1):
        step.stream, step.stream_out = channels[index - 1], channels[index]
    load.stream = channels[-1]
    return channels


def stream_stages(context: Context, stages: list[SyncTableOperator], label: str) -> dict[str, Any]:
    """Run the extract, the steps and the load (``stages``) side by side; the load commits only after every
    other stage finished. Returns each stage's value by task id; raises the first stage's own error."""
    from airflow_provider_sync.operators.audit import start_record

    channels = wire(stages)
    *before, load = stages
    for operator in before:
        operator.prepare(context)
    producers = [
        _Producer(operator, start_record(operator, context, operator.audit_step), channel)
        for operator, channel in zip(before, channels, strict=True)
    ]
    failures = _Failures()
    threads = [
        threading.Thread(
            target=producer.run,
            args=(context, failures),
            name=f"{producer.operator.task_id} {label}",
            daemon=True,
        )
        for producer in producers
    ]
    for thread in threads:
        thread.start()
    try:
        loaded = load.execute_stage(context)
    except BaseException as error:
        failures.add(error)
        _end(channels, threads, producers, load_failed=True)
        first = failures.first(error)
        if first is error:
            raise
        raise first from None
    _end(channels, threads, producers, load_failed=False)
    values = {p.operator.task_id: p.outcome.xcom for p in producers if p.outcome is not None}
    values[load.task_id] = loaded
    return values


def _end(
    channels: list[BatchChannel],
    threads: list[threading.Thread],
    producers: list[_Producer],
    *,
    load_failed: bool,
) -> None:
    """Stop whatever still runs, wait for it, then write every stage's audit row (the load has ended)."""
    for channel in channels:
        channel.cancel()
    for thread in threads:
        thread.join()
    for producer in producers:
        producer.write_audit(load_failed=load_failed)
