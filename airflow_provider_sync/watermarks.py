"""Where watermarks live: one Airflow Variable per DAG and table, holding JSON.

Key: ``sync:<dag_id>:<table>``. Value: ``{"cursor": ..., "key": [...], "run_id": ..., "committed_at": ...,
"rows": ...}``. Users may edit or delete the Variable in the UI (or with ``airflow-sync watermark``) to
re-sync from a point or from scratch.
"""

from __future__ import annotations

import json
from typing import Any

VARIABLE_PREFIX = "sync:"


def variable_key(dag_id: str, table: str) -> str:
    return f"{VARIABLE_PREFIX}{dag_id}:{table}"


def read_in_task(dag_id: str, table: str) -> dict[str, Any] | None:
    """The stored watermark, read through the Task SDK (only inside a running task)."""
    from airflow.sdk import Variable

    raw = Variable.get(variable_key(dag_id, table), default=None)
    if raw is None:
        return None
    value = json.loads(raw) if isinstance(raw, str) else raw
    return value if isinstance(value, dict) else None


def write_in_task(dag_id: str, table: str, value: dict[str, Any]) -> None:
    """Store the watermark through the Task SDK. It is committed at once: call it only after the load."""
    from airflow.sdk import Variable

    Variable.set(variable_key(dag_id, table), json.dumps(value, sort_keys=True, default=str))
