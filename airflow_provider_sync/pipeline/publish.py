"""Sending staged rows to a message broker instead of a database table.

:func:`publish_from_staging` is the load step's sink for Kafka targets: every staged row becomes one JSON
change event (see :mod:`airflow_provider_sync.publish.kafka`), and it returns only once the broker confirmed
every message, so the watermark, moved by the next task, never passes rows that did not reach Kafka. An
unconfirmed message raises :class:`~airflow_provider_sync.errors.TransientError` and the task is retried;
a retry publishes the range again (at-least-once delivery: consumers de-duplicate by message key).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

from .specs import LoadSpec, PublishOptions

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.staging.manifest import Manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishLoadResult:
    """What one publish did, in the shape the load step's audit expects (``rows_loaded``, ``to_json``)."""

    mode: str
    rows_staged: int
    topic: str
    messages: int
    batches: int
    seconds: float

    @property
    def rows_loaded(self) -> int:
        return self.messages

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rows_loaded": self.rows_loaded}


def kafka_target_spec(spec: LoadSpec, manifest: Manifest) -> Any:
    """The :class:`~airflow_provider_sync.publish.kafka.KafkaTargetSpec` of one load (topic expanded)."""
    from airflow_provider_sync.core.topics import topic_for_table
    from airflow_provider_sync.publish.kafka import KafkaTargetSpec

    if spec.mode == "replace":
        raise TerminalError(
            f"target {spec.target}: mode 'replace' cannot apply to a Kafka topic (a topic is never swapped); "
            "use mode 'upsert' (change events keyed by target keys) or 'append' (insert events)"
        )
    publish = spec.publish or PublishOptions(topic=spec.table, source_table=spec.table)
    source = publish.source_table
    if publish.source_schema:
        source = f"{publish.source_schema}.{source}"
    return KafkaTargetSpec(
        topic=topic_for_table(publish.topic, table=publish.source_table, schema=publish.source_schema),
        key_columns=tuple(spec.keys or manifest.key_columns),
        source_table=source,
        dag_id=manifest.dag_id,
        run_id=manifest.run_id,
        cursor_column=manifest.cursor_column,
        op="upsert" if spec.mode == "upsert" else "insert",
        key_format=publish.key_format,
        key_separator=publish.key_separator,
        headers=dict(publish.headers),
        soft_delete_column=spec.soft_delete_column,
    )


def publish_from_staging(
    spec: LoadSpec,
    manifest: Manifest,
    *,
    logger: Any = None,
    on_load_error: str = "fail",
    producer_factory: Callable[[dict[str, Any]], Any] | None = None,
) -> PublishLoadResult:
    """Publish the manifest's staged rows to the Kafka topic of ``spec``; raise unless all were confirmed.

    ``spec.connection`` is the Kafka connection (its extra is the producer configuration). ``upsert`` sends
    ``"op": "upsert"`` events and ``append`` sends ``"op": "insert"`` events, keyed by ``spec.keys`` (or the
    extraction's tie-break keys). ``producer_factory`` replaces ``confluent_kafka.Producer`` (for tests).
    """
    from airflow_provider_sync.publish.kafka import KafkaPublisher

    from .progress import ProgressReporter

    logger = logger or log
    if on_load_error != "fail":
        raise TerminalError(
            f"target {spec.target}: on_load_error {on_load_error!r} is not available for Kafka targets (the "
            "broker rejects no row for its values); remove target.on_load_error or set it to 'fail'"
        )
    target = kafka_target_spec(spec, manifest)

    def batches() -> Iterator[pa.RecordBatch]:
        from airflow_provider_sync.staging.files import read_manifest

        progress = ProgressReporter(logger, f"publish {target.topic}", total=manifest.rows or None)
        # Published messages cannot be taken back: check each file completely before sending any of it.
        for batch in read_manifest(manifest, check_first=True):
            progress.add(batch.num_rows)
            yield batch
        progress.finish()

    published = KafkaPublisher(spec.connection, producer_factory=producer_factory).publish(batches(), target)
    result = PublishLoadResult(
        mode=spec.mode,
        rows_staged=manifest.rows,
        topic=published.topic,
        messages=published.messages,
        batches=published.batches,
        seconds=round(published.seconds, 3),
    )
    logger.info("publish %s (%s): %s", target.topic, spec.mode, json.dumps(result.to_json()))
    return result
