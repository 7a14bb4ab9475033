"""Kafka target: publish Arrow record batches as one JSON change event per row.

Each row becomes one message on the table's topic:

- key: the target key columns, as a compact JSON object (``{"id": 7}``, the default) or their values joined
  with a separator (``7|eu``), so every change of one row lands on the same partition, in order;
- value: a JSON change event::

      {"op": "upsert", "source": "public.orders", "cursor": "2024-05-01T10:00:00.123456Z",
       "dag_id": "orders_sync", "run_id": "scheduled__2024-05-01",
       "event_time": "2024-05-01T10:05:00.000001Z",
       "after": {"id": 7, "amount": "12.50", "updated_at": "2024-05-01T10:00:00.123456Z",
                 "photo": "iVBORw=="}}

JSON-safe encodings inside ``after`` and ``cursor``: decimals as exact strings, timestamps as ISO 8601 (UTC
with ``Z`` when the column has a time zone, without a suffix when it is naive), dates and times as ISO
strings, binary as standard base64, non-finite floats as ``"NaN"`` / ``"Infinity"`` / ``"-Infinity"``.

The producer is idempotent (``enable.idempotence=true``, ``acks=all``) and :meth:`KafkaPublisher.publish`
returns only once the broker has confirmed every message; any undelivered message raises
:class:`~airflow_provider_sync.errors.TransientError`, so the watermark never moves past rows that did not
reach Kafka. Re-publishing after a retry can repeat events (at-least-once); consumers de-duplicate by key,
as the ``upsert`` load mode does.

The connection is Airflow's Kafka provider connection (conn type ``kafka``): its extra is the librdkafka
producer configuration, e.g. ``{"bootstrap.servers": "broker:9092", "compression.type": "lz4"}``.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_sync.cdc.changes import ALL_METADATA_COLUMNS, OP_COLUMN, POSITION_COLUMN
from airflow_provider_sync.core.topics import TOPIC_NAME
from airflow_provider_sync.errors import MissingDriverError, TerminalError, TransientError

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

# The delivery guarantees the watermark relies on; a connection extra cannot weaken them.
REQUIRED_PRODUCER_SETTINGS: dict[str, str] = {"enable.idempotence": "true", "acks": "all"}
DEFAULT_PRODUCER_SETTINGS: dict[str, str] = {"linger.ms": "20", "compression.type": "lz4"}
# librdkafka options whose values are callables; Airflow's hook resolves dotted paths through an allowlist,
# which a plain producer config cannot do safely, so string values for them are refused.
_CALLBACK_KEYS = ("error_cb", "throttle_cb", "stats_cb", "log_cb", "oauth_cb", "on_commit")


@dataclass(frozen=True)
class KafkaTargetSpec:
    """Where and how one table's rows are published."""

    topic: str
    key_columns: tuple[str, ...]
    source_table: str
    dag_id: str
    run_id: str
    cursor_column: str | None = None
    op: Literal["upsert", "insert"] = "upsert"
    key_format: Literal["json", "joined"] = "json"
    key_separator: str = "|"
    headers: Mapping[str, str] = field(default_factory=dict)
    flush_timeout_seconds: float = 120.0
    soft_delete_column: str | None = None
    tombstones: bool = True

    def __post_init__(self) -> None:
        if not TOPIC_NAME.match(self.topic) or self.topic in {".", ".."}:
            raise TerminalError(
                f"Kafka topic name {self.topic!r} is invalid: use 1-249 characters from A-Z a-z 0-9 . _ -"
            )
        if not self.key_columns:
            raise TerminalError(
                f"the Kafka target for {self.source_table!r} needs key columns (keys: [...]) so that every "
                "change of a row goes to the same partition"
            )
        if self.op not in ("upsert", "insert"):
            raise TerminalError(f"Kafka event op {self.op!r} is not allowed; use 'upsert' or 'insert'")
        if self.key_format not in ("json", "joined"):
            raise TerminalError(
                f"Kafka key format {self.key_format!r} is not allowed; use 'json' or 'joined'"
            )


@dataclass(frozen=True)
class PublishResult:
    topic: str
    messages: int
    batches: int
    seconds: float


def producer_config(connection: Any) -> dict[str, Any]:
    """The producer configuration from a Kafka connection's extra, with the delivery guarantees enforced.

    ``connection`` is an Airflow ``Connection`` (``extra_dejson``) or any object with an ``extra`` dict
    (or JSON string). Without ``bootstrap.servers`` in the extra, ``host[:port]`` is used.
    """
    extra = getattr(connection, "extra_dejson", None)
    if extra is None:
        extra = getattr(connection, "extra", None) or {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError as exc:
            raise TerminalError(f"the Kafka connection's extra is not valid JSON ({exc.msg})") from None
    config: dict[str, Any] = dict(DEFAULT_PRODUCER_SETTINGS)
    config.update(extra)
    if not config.get("bootstrap.servers"):
        host = getattr(connection, "host", None)
        port = getattr(connection, "port", None)
        if not host:
            raise TerminalError(
                "the Kafka connection names no broker: set 'bootstrap.servers' in its extra "
                '(e.g. {"bootstrap.servers": "broker:9092"})'
            )
        config["bootstrap.servers"] = f"{host}:{port}" if port else str(host)
    for key in _CALLBACK_KEYS:
        if isinstance(config.get(key), str):
            raise TerminalError(
                f"the Kafka connection's extra sets {key!r} to a dotted path, which the sync Kafka target "
                "does not resolve; remove it from the connection extra"
            )
    for key, required in REQUIRED_PRODUCER_SETTINGS.items():
        if key in config and str(config[key]).lower() != required:
            log.warning(
                "Kafka connection sets %s=%s; using %s=%s so the producer neither loses nor duplicates rows",
                key,
                config[key],
                key,
                required,
            )
        config[key] = required
    return config


class KafkaPublisher:
    """Publishes Arrow record batches to Kafka and confirms every delivery before returning."""

    def __init__(self, connection: Any, *, producer_factory: Callable[[dict[str, Any]], Any] | None = None):
        self._config = producer_config(connection)
        self._producer_factory = producer_factory

    def _new_producer(self) -> Any:
        if self._producer_factory is not None:
            return self._producer_factory(self._config)
        try:
            from confluent_kafka import Producer
        except ImportError as exc:
            raise MissingDriverError("Kafka", "kafka", "confluent_kafka") from exc
        return Producer(self._config)

    def publish(self, batches: Iterable[pa.RecordBatch], spec: KafkaTargetSpec) -> PublishResult:
        """Publish every row of ``batches`` to ``spec.topic``; raise unless the broker confirmed them all."""
        try:
            import confluent_kafka  # noqa: F401
        except ImportError as exc:
            raise MissingDriverError("Kafka", "kafka", "confluent_kafka") from exc

        started = time.monotonic()
        producer = self._new_producer()
        failures: list[Any] = []
        delivered = 0

        def on_delivery(error: Any, _message: Any) -> None:
            nonlocal delivered
            if error is None:
                delivered += 1
            else:
                failures.append(error)

        headers = [(name, value.encode()) for name, value in spec.headers.items()]
        produced = 0
        batch_count = 0
        for batch in batches:
            batch_count += 1
            for key, value in encode_batch(batch, spec):
                _produce(producer, spec, key, value, headers, on_delivery)
                produced += 1
                if failures:
                    break
            producer.poll(0)
            if failures:
                break
        remaining = producer.flush(spec.flush_timeout_seconds)
        if failures or remaining or delivered != produced:
            first = failures[0].str() if failures else "no delivery report before the flush timeout"
            raise TransientError(
                f"{produced - delivered} of {produced} messages to Kafka topic {spec.topic!r} were not "
                f"confirmed by the broker (first error: {first}); the watermark was not advanced, so "
                "retrying the task publishes them again"
            )
        seconds = time.monotonic() - started
        log.info("published %d messages to Kafka topic %s in %.1f s", produced, spec.topic, seconds)
        return PublishResult(topic=spec.topic, messages=produced, batches=batch_count, seconds=seconds)


def _produce(
    producer: Any,
    spec: KafkaTargetSpec,
    key: bytes,
    value: bytes | None,
    headers: list[tuple[str, bytes]],
    on_delivery: Callable[[Any, Any], None],
) -> None:
    """Queue one message, serving delivery reports while the producer's local queue is full."""
    from confluent_kafka import KafkaError, KafkaException

    while True:
        try:
            producer.produce(
                spec.topic, value=value, key=key, headers=headers or None, on_delivery=on_delivery
            )
            return
        except BufferError:
            # Local queue full: serve delivery reports until there is room.
            producer.poll(0.5)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                raise TerminalError(
                    f"a row of {spec.source_table!r} encodes to a message larger than the "
                    f"producer's message.max.bytes (topic {spec.topic!r}); raise "
                    "'message.max.bytes' in the Kafka connection extra and on the topic"
                ) from None
            raise TransientError(
                f"could not queue a message for Kafka topic {spec.topic!r}: {error.str()}"
            ) from None


def encode_batch(batch: pa.RecordBatch, spec: KafkaTargetSpec) -> Iterable[tuple[bytes, bytes | None]]:
    """(key, value) message bytes for every row of ``batch``, in row order. A change batch (from a
    change-log capture, with ``_sync_op``) or a row the source flags as deleted (``soft_delete_column``)
    becomes a ``"delete"`` event with only the key in ``before``, followed by a tombstone (the key with a
    null value) so a compacted topic forgets the row."""
    if OP_COLUMN in batch.schema.names or spec.soft_delete_column is not None:
        yield from _encode_changes(batch, spec)
        return
    names = batch.schema.names
    missing = [name for name in (*spec.key_columns, spec.cursor_column) if name and name not in names]
    if missing:
        raise TerminalError(
            f"the Kafka target for {spec.source_table!r} names columns that are not in the rows: "
            f"{', '.join(missing)}; available columns: {', '.join(names)}"
        )
    columns = [json_safe_values(batch.column(i)) for i in range(batch.num_columns)]
    key_positions = [names.index(name) for name in spec.key_columns]
    cursor_position = names.index(spec.cursor_column) if spec.cursor_column else None
    # The envelope is the same for every row of the batch: encode it once and splice each row in.
    head = _encode({"op": spec.op, "source": spec.source_table, "dag_id": spec.dag_id, "run_id": spec.run_id})
    head = head[:-1] + f',"event_time":{_encode(_utc_now_iso())},"cursor":'
    encode = _encode
    for row in zip(*columns, strict=True):
        cursor = encode(row[cursor_position]) if cursor_position is not None else "null"
        value = f'{head}{cursor},"after":{encode(dict(zip(names, row, strict=True)))}}}'
        yield _encode_key(row, key_positions, spec), value.encode()


def _change_ops(batch: pa.RecordBatch, spec: KafkaTargetSpec) -> list[str]:
    if OP_COLUMN in batch.schema.names:
        return [str(op) for op in batch.column(OP_COLUMN).to_pylist()]
    from airflow_provider_sync.core.deletes import flagged_mask

    flagged = flagged_mask(batch, str(spec.soft_delete_column)).to_pylist()
    return ["delete" if deleted else spec.op for deleted in flagged]


def _encode_changes(batch: pa.RecordBatch, spec: KafkaTargetSpec) -> Iterable[tuple[bytes, bytes | None]]:
    ops = _change_ops(batch, spec)
    data = [name for name in batch.schema.names if name not in ALL_METADATA_COLUMNS]
    table = batch.select(data)
    names = table.schema.names
    missing = [name for name in spec.key_columns if name not in names]
    if missing:
        raise TerminalError(
            f"the Kafka target for {spec.source_table!r} names key columns that are not in the rows: "
            f"{', '.join(missing)}; available columns: {', '.join(names)}"
        )
    columns = [json_safe_values(table.column(i)) for i in range(table.num_columns)]
    positions = (
        batch.column(POSITION_COLUMN).to_pylist()
        if POSITION_COLUMN in batch.schema.names
        else [None] * len(ops)
    )
    key_positions = [names.index(name) for name in spec.key_columns]
    envelope = {"source": spec.source_table, "dag_id": spec.dag_id, "run_id": spec.run_id}
    now = _utc_now_iso()
    for op, position, row in zip(ops, positions, zip(*columns, strict=True), strict=True):
        key = _encode_key(row, key_positions, spec)
        if op == "delete":
            before = {name: row[i] for name, i in zip(spec.key_columns, key_positions, strict=True)}
            event = {"op": "delete", **envelope, "event_time": now, "position": position, "before": before}
            yield key, _encode(event).encode()
            if spec.tombstones:
                yield key, None
            continue
        event = {"op": op, **envelope, "event_time": now, "position": position}
        yield key, _encode({**event, "after": dict(zip(names, row, strict=True))}).encode()


def _encode_key(row: Sequence[Any], positions: list[int], spec: KafkaTargetSpec) -> bytes:
    if spec.key_format == "json":
        return _encode({spec.key_columns[i]: row[p] for i, p in enumerate(positions)}).encode()
    return spec.key_separator.join("" if row[p] is None else _plain(row[p]) for p in positions).encode()


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else _encode(value)


# One shared encoder: json.dumps with options builds a new encoder per call, which dominated publishing.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _utc_now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def json_safe_values(array: pa.Array | pa.ChunkedArray) -> list[Any]:
    """The values of one column as JSON-ready Python objects (see the module docstring for the encodings)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if pa.types.is_dictionary(kind):
        return json_safe_values(array.dictionary_decode())
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            return _pylist(pc.strftime(array, format="%Y-%m-%dT%H:%M:%S"))
        in_utc = array.cast(pa.timestamp(kind.unit, "UTC"))
        return _pylist(pc.strftime(in_utc, format="%Y-%m-%dT%H:%M:%SZ"))
    if (
        pa.types.is_decimal(kind)
        or pa.types.is_date(kind)
        or pa.types.is_time(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_string_view(kind)
    ):
        return _pylist(array.cast(pa.string()))
    if pa.types.is_floating(kind):
        return [_json_float(value) for value in array.to_pylist()]
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return [None if value is None else base64.b64encode(value).decode() for value in array.to_pylist()]
    if pa.types.is_string(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return _pylist(array)
    # Nested and rarer types: convert value by value.
    return [_json_safe_python(value) for value in array.to_pylist()]


def _pylist(array: pa.Array | pa.ChunkedArray) -> list[Any]:
    values: list[Any] = array.to_pylist()
    return values


def _json_float(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _json_safe_python(value: Any) -> Any:
    from datetime import date, time, timedelta
    from decimal import Decimal

    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat()
        return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat() + "Z"
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Mapping):
        return {str(k): _json_safe_python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        # Arrow maps arrive as lists of (key, value) pairs.
        return [_json_safe_python(item) for item in value]
    return str(value)
