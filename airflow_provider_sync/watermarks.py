"""Where watermarks live: one Airflow Variable per DAG and table, holding JSON.

Key: ``sync:<dag_id>:<table>``. Value: ``{"cursor": ..., "key": [...], "run_id": ..., "committed_at": ...,
"rows": ...}``. Users may edit or delete the Variable in the UI (or with ``airflow-sync watermark``) to
re-sync from a point or from scratch.

A stored value that cannot be read as a watermark of the table's strategy is damaged state: it stops the
run with an error naming the Variable, never counts as "no watermark" (which would re-read, and in append
mode re-load, everything).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import WatermarkError

if TYPE_CHECKING:
    from airflow_provider_sync.core.watermark import Watermark

VARIABLE_PREFIX = "sync:"
#: How much of a damaged value an error shows.
SHOWN_CHARACTERS = 200

_EXAMPLE_CURSOR = {
    "timestamp": ("2024-01-31T00:00:00Z", '{"timestamp": "2024-01-31T00:00:00+00:00"}'),
    "sequence": ("1042", "1042"),
    "version": ("1042", "1042"),
}


def variable_key(dag_id: str, table: str) -> str:
    return f"{VARIABLE_PREFIX}{dag_id}:{table}"


def shown_value(raw: Any) -> str:
    """The stored value as one line, cut to :data:`SHOWN_CHARACTERS`."""
    text = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True, default=str)
    text = text.replace("\n", "\\n")
    if len(text) > SHOWN_CHARACTERS:
        return f"{text[:SHOWN_CHARACTERS]}… ({len(text)} characters)"
    return text


def fix_hint(dag_id: str, table: str, strategy: str | None) -> str:
    """How to repair a watermark from the command line."""
    cursor, _ = _EXAMPLE_CURSOR.get(strategy or "", ("<cursor>", ""))
    return (
        f"fix: airflow-sync watermark set {dag_id} {table} --cursor {cursor} [--key <key values>]  "
        f"(resume after that point), or airflow-sync watermark reset {dag_id} {table}  "
        "(delete it: the next run re-syncs from initial_value)"
    )


def damaged(dag_id: str, table: str, raw: Any, reason: str, strategy: str | None) -> WatermarkError:
    """The error for a stored value that is not a usable watermark."""
    _, example = _EXAMPLE_CURSOR.get(strategy or "", ("", '{"timestamp": "2024-01-31T00:00:00+00:00"}'))
    return WatermarkError(
        f"watermark Variable {variable_key(dag_id, table)!r} is damaged: {reason}. "
        f"Stored value: {shown_value(raw)}. "
        f'Expected a JSON object like {{"cursor": {example}, "key": [42]}}'
        f"{f' for strategy {strategy}' if strategy else ''}. The run stops rather than guess where to "
        f"resume. {fix_hint(dag_id, table, strategy)}"
    )


def parse_stored(
    dag_id: str, table: str, raw: Any, strategy: str | None, source_timezone: str = "UTC"
) -> Watermark:
    """Read a stored Variable value (JSON text, or an already decoded object) as a watermark of
    ``strategy``; any problem is a :class:`WatermarkError` naming the Variable and saying how to fix it."""
    from airflow_provider_sync.core.watermark import Watermark

    try:
        return Watermark.from_json(raw, None if strategy == "full" else strategy, source_timezone)
    except WatermarkError as exc:
        reason = getattr(exc, "reason", str(exc))
        reason = reason if len(reason) <= SHOWN_CHARACTERS else f"{reason[:SHOWN_CHARACTERS]}…"
        raise damaged(dag_id, table, raw, reason, strategy) from None


def read_in_task(
    dag_id: str, table: str, strategy: str | None = None, source_timezone: str = "UTC"
) -> dict[str, Any] | None:
    """The stored watermark as JSON, read through the Task SDK (only inside a running task); None when
    there is none. A damaged value raises (checked against ``strategy`` when given)."""
    from airflow.sdk import Variable

    raw = Variable.get(variable_key(dag_id, table), default=None)
    if raw is None:
        return None
    mark = parse_stored(dag_id, table, raw, strategy, source_timezone)
    return json.loads(raw) if isinstance(raw, str) else mark.to_json()


def load_in_task(dag_id: str, table: str, strategy: str, source_timezone: str = "UTC") -> Watermark | None:
    """The stored watermark of a table (inside a running task), checked against its strategy."""
    from airflow.sdk import Variable

    raw = Variable.get(variable_key(dag_id, table), default=None)
    return None if raw is None else parse_stored(dag_id, table, raw, strategy, source_timezone)


def write_in_task(dag_id: str, table: str, value: dict[str, Any]) -> None:
    """Store the watermark through the Task SDK. It is committed at once: call it only after the load."""
    from airflow.sdk import Variable

    Variable.set(variable_key(dag_id, table), json.dumps(value, sort_keys=True, default=str))


def read_outside_task(dag_id: str, table: str) -> str | None:
    """The stored value (decrypted, secrets backends first) from outside any task: the CLI, the UI."""
    from airflow.models import Variable

    raw = Variable.get(variable_key(dag_id, table), default_var=None)
    return None if raw is None else str(raw)


def write_outside_task(dag_id: str, table: str, value: dict[str, Any]) -> None:
    from airflow.models import Variable

    Variable.set(variable_key(dag_id, table), json.dumps(value, sort_keys=True, default=str))


def delete_outside_task(dag_id: str, table: str) -> bool:
    from airflow.models import Variable

    return bool(Variable.delete(variable_key(dag_id, table)))
