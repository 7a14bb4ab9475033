"""Setting or resetting a watermark from the Sync page: a proposal, a signed confirmation, the change and
its audit row (steps ``watermark_set`` / ``watermark_reset``, as ``airflow-sync watermark`` writes them).

The confirmation form carries a token signed with the API server's secret key that binds the user, the
table and the exact new value; only a POST with a valid, fresh token changes anything. A page elsewhere can
neither skip the confirmation nor change what is confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

if TYPE_CHECKING:
    from airflow_provider_sync.config.resolve import Pipeline
    from airflow_provider_sync.config.resolved import TableSpec

ACTIONS = {"set": "watermark_set", "reset": "watermark_reset"}
#: A confirmation form is valid this long.
CONFIRM_MAX_AGE_S = 600
_SALT = "airflow-provider-sync.watermark-change"


@dataclass
class Change:
    dag_id: str
    table: str
    action: str
    after: dict[str, Any] | None

    def payload(self, username: str) -> dict[str, Any]:
        return {"u": username, "d": self.dag_id, "t": self.table, "a": self.action, "v": self.after}


def _serializer() -> Any:
    from airflow.configuration import conf
    from itsdangerous import URLSafeTimedSerializer

    secret = conf.get("api", "secret_key", fallback="") or conf.get("api_auth", "jwt_secret", fallback="")
    if not secret:
        raise TerminalError("[api] secret_key is not set: watermark changes cannot be confirmed safely")
    return URLSafeTimedSerializer(secret, salt=_SALT)


def propose(table: TableSpec, dag_id: str, action: str, cursor: str, key: str) -> Change:
    """The change asked for, checked against the table's strategy (TerminalError says what is wrong)."""
    from airflow_provider_sync.factory.cli_watermark import new_watermark

    if action not in ACTIONS:
        raise TerminalError(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    if action == "reset":
        return Change(dag_id, table.name, action, None)
    if not cursor.strip():
        raise TerminalError("a cursor value is needed to set the watermark")
    keys = [part.strip() for part in key.split(",") if part.strip()]
    return Change(dag_id, table.name, action, new_watermark(table, cursor.strip(), keys or None))


def sign(change: Change, username: str) -> str:
    return str(_serializer().dumps(change.payload(username)))


def verify(token: str, username: str, dag_id: str, table: str) -> Change:
    """The change a confirmation token carries, when it is valid, fresh and for this user and table."""
    from itsdangerous import BadData

    try:
        data = _serializer().loads(token, max_age=CONFIRM_MAX_AGE_S)
    except BadData as error:
        raise TerminalError(
            f"the confirmation is invalid or older than {CONFIRM_MAX_AGE_S} s; start the change again"
        ) from error
    if (data.get("u"), data.get("d"), data.get("t")) != (username, dag_id, table):
        raise TerminalError("the confirmation was made for another user or table; start the change again")
    return Change(dag_id, table, str(data["a"]), data.get("v"))


def current(dag_id: str, table: str) -> Any:
    """The stored value: its JSON, the raw text when it is damaged, None when not set."""
    from airflow_provider_sync.factory.cli_watermark import _stored

    return _stored(dag_id, table)


def describe(value: Any) -> str:
    """A stored value (or a proposed one) as people read it."""
    from airflow_provider_sync.factory.cli_watermark import _describe_stored

    if value is None:
        return "not set: the next run starts from initial_value (or the beginning)"
    return _describe_stored(value)


def apply(pipeline: Pipeline, table: TableSpec, change: Change, username: str) -> str:
    """Change the Variable, then write the audit row (as ``airflow-sync watermark`` does, marked as made
    on the Sync page by ``username``); returns what happened, for the page."""
    from airflow_provider_sync.factory.cli_watermark import write_cli_audit
    from airflow_provider_sync.watermarks import delete_outside_task, write_outside_task

    before = current(change.dag_id, change.table)
    if change.after is None:
        delete_outside_task(change.dag_id, change.table)
    else:
        write_outside_task(change.dag_id, change.table, change.after)
    step = ACTIONS[change.action]
    try:
        return write_cli_audit(
            pipeline, table, step, before, change.after, via="ui", by=f"sync page ({username})"
        )
    except Exception as error:  # the Variable did change: say so, and that the trail misses it
        from airflow_provider_sync.notifications.message import scrub_error_message

        reason = scrub_error_message(str(error))
        return f"the watermark changed, but its audit row could not be written: {reason}"
