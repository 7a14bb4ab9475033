"""Message-broker topic names: a configured template expanded for one table, and checked."""

from __future__ import annotations

import re

from airflow_provider_sync.errors import TerminalError

__all__ = ["TOPIC_NAME", "topic_for_table"]

TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_TOPIC_PLACEHOLDERS = ("schema", "table")


def topic_for_table(template: str, *, table: str, schema: str | None = None) -> str:
    """Expand ``{schema}`` and ``{table}`` in a configured topic (``sync.{schema}.{table}``) and check it."""
    try:
        topic = template.format_map({"schema": schema or "", "table": table})
    except (KeyError, IndexError, ValueError) as exc:
        raise TerminalError(
            f"Kafka topic template {template!r} is invalid ({exc}); the only placeholders allowed are "
            + ", ".join("{" + name + "}" for name in _TOPIC_PLACEHOLDERS)
        ) from None
    topic = topic.replace("..", ".").strip(".") if schema is None else topic
    if not TOPIC_NAME.match(topic):
        raise TerminalError(
            f"Kafka topic {topic!r} (from template {template!r}) is invalid: use 1-249 characters from "
            "A-Z a-z 0-9 . _ -; table names with other characters need an explicit topic"
        )
    return topic
