"""``airflow-sync watermark show|set|reset``: inspect or move a table's watermark Variable.

Runs outside any task, so it uses the metadata database through ``airflow.models.Variable`` (the Task SDK's
``Variable`` only works inside a running task).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

from airflow_provider_sync.watermarks import VARIABLE_PREFIX, variable_key


def _variable_model() -> Any:
    from airflow.models import Variable

    return Variable


def cmd_show(args: argparse.Namespace) -> int:
    from airflow.models import Variable as VariableRow
    from airflow.utils.session import create_session
    from sqlalchemy import select

    prefix = variable_key(args.dag_id, args.table) if args.table else f"{VARIABLE_PREFIX}{args.dag_id}:"
    with create_session() as session:
        rows = session.execute(
            select(VariableRow.key, VariableRow.val).where(VariableRow.key.startswith(prefix))
        )
        found = sorted((key, value) for key, value in rows if args.table is None or key == prefix)
    if not found:
        print(
            f"no watermark stored under {prefix!r}: the next run starts from initial_value (or the beginning)"
        )
        return 0
    for key, value in found:
        print(f"{key}\n{json.dumps(json.loads(value), indent=2, sort_keys=True)}")
    return 0


def _parse_cursor(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def cmd_set(args: argparse.Namespace) -> int:
    value = {
        "cursor": _parse_cursor(args.cursor),
        "key": [_parse_cursor(part) for part in args.key] if args.key else None,
        "run_id": "set-by-airflow-sync-cli",
        "committed_at": datetime.now(timezone.utc).isoformat(),
        "rows": 0,
    }
    key = variable_key(args.dag_id, args.table)
    _variable_model().set(key, value, serialize_json=True)
    print(f"{key} = {json.dumps(value, sort_keys=True)}\nthe next run reads rows after this point")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    key = variable_key(args.dag_id, args.table)
    deleted = _variable_model().delete(key)
    print(f"{key} deleted: the next run re-syncs from initial_value" if deleted else f"{key} was not set")
    return 0


def add_watermark_commands(commands: Any) -> None:
    watermark = commands.add_parser("watermark", help="show, set or reset a table's watermark")
    actions = watermark.add_subparsers(dest="action", required=True)

    show = actions.add_parser("show", help="print stored watermarks of a DAG (or one table)")
    show.add_argument("dag_id")
    show.add_argument("table", nargs="?")
    show.set_defaults(handler=cmd_show)

    set_ = actions.add_parser("set", help="make the next run start after a cursor value")
    set_.add_argument("dag_id")
    set_.add_argument("table")
    set_.add_argument("--cursor", required=True, help="cursor value (ISO timestamp or number)")
    set_.add_argument("--key", nargs="*", help="tie-break key values of the last row already synced")
    set_.set_defaults(handler=cmd_set)

    reset = actions.add_parser("reset", help="forget the watermark: the next run re-syncs from the start")
    reset.add_argument("dag_id")
    reset.add_argument("table")
    reset.set_defaults(handler=cmd_reset)
