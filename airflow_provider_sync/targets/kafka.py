"""Kafka: one JSON change event per row on a topic, every delivery confirmed before the load succeeds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from airflow_provider_sync.config.base import StrictModel
from airflow_provider_sync.targets.registry import TargetCapabilities, TargetKind, register_target

if TYPE_CHECKING:
    from airflow_provider_sync.dialects.connection import ConnectionInfo


class KafkaTargetOptions(StrictModel):
    """How rows become Kafka messages (one JSON change event per row, keyed by the target keys)."""

    key_format: Literal["json", "joined"] | None = Field(
        None,
        description='json: the keys as a JSON object ({"id": 7}, default); joined: the key values joined '
        "by key_separator (7|eu).",
    )
    key_separator: str | None = Field(
        None, min_length=1, max_length=8, description="Separator of a joined key (default `|`)."
    )
    headers: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")], str] | None = Field(
        None,
        description="Static headers added to every message (no secrets: consumers see every header).",
    )


def kafka_load_options(table: Any) -> Mapping[str, Any]:
    """``publish`` of the load: the topic and the shape of each message."""
    from airflow_provider_sync.dialects.types import split_table_name
    from airflow_provider_sync.pipeline.specs import PublishOptions

    target, source = table.target, table.source
    source_schema, source_table = split_table_name(str(source.table or target.table))
    _, target_table = split_table_name(str(target.table))
    message: KafkaTargetOptions = target.kafka or KafkaTargetOptions()
    publish = PublishOptions(
        topic=target.topic or target_table,
        source_table=source_table,
        source_schema=source_schema,
        key_format=message.key_format or "json",
        key_separator=message.key_separator or "|",
        headers=tuple(sorted((message.headers or {}).items())),
    )
    return {"publish": publish}


def broker_lineage(info: ConnectionInfo, topic: str) -> tuple[str, str]:
    port = f":{info.port}" if info.port else ""
    return f"kafka://{info.host or 'localhost'}{port}", topic


KAFKA = register_target(
    TargetKind(
        name="kafka",
        summary="A Kafka topic: one JSON change event per row, keyed by the target keys.",
        conn_types=("kafka",),
        # A delete is a delete event followed by a tombstone, so a compacted topic forgets the key.
        capabilities=TargetCapabilities(
            tables=False, updates_in_place=False, deletes=True, transactions=False
        ),
        sink="airflow_provider_sync.pipeline.publish:publish_from_staging",
        lineage=broker_lineage,
        options_key="kafka",
        options_model=KafkaTargetOptions,
        options_help="Message format when the target connection is Kafka (conn type `kafka`).",
        load_options=kafka_load_options,
    )
)
