"""What an alert says, built from an Airflow callback context; and how error text is made safe to send.

Alerts go to mailboxes and chat rooms that are far less protected than the databases, so an alert carries
names and identifiers only: the DAG, table, step, run, try, the error's class and a scrubbed message, and a
link to the task log. Row values never appear: database error texts that quote values (``DETAIL: Key
(email)=(...)``, ``Duplicate entry '...'``) are cut, and credentials in URIs or ``key=value`` pairs masked.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

MAX_ERROR_CHARS = 1000
_MASK = "***"

_URI_CREDENTIALS = re.compile(r"(?P<prefix>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*):(?P<password>[^@\s/]*)@")
_SECRET_PAIRS = re.compile(
    r"(?i)(?P<key>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|"
    r"client[_-]?secret|authorization|auth)\b[\"']?)(?P<sep>\s*[=:]\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|(?:bearer\s+|basic\s+)?[^\s,;&)]+)"
)
# Database errors that quote the offending row's values (PostgreSQL DETAIL lines, MySQL duplicate entries,
# type conversion messages). The value is replaced, the explanation around it kept.
_DETAIL_LINE = re.compile(r"(?im)^(?P<label>\s*DETAIL:).*$")
_FAILING_ROW = re.compile(r"(?i)(Failing row contains )\(.*?\)(?=\.?\s*$|\.\s)", re.MULTILINE)
_KEY_VALUES = re.compile(r"(Key \([^)]*\)=)\(.*?\)(?=\s(?:already|is not|conflicts))")
_QUOTED_VALUE = re.compile(
    r"(?i)(?P<lead>\b(?:entry|value|convert|for type [\w ]+?|for enum \w+|literal)\s*:?\s*)"
    r"(?P<quoted>\"[^\"]*\"|'[^']*'|`[^`]*`)"
)


def scrub_error_message(message: str, *, limit: int = MAX_ERROR_CHARS) -> str:
    """``message`` with credentials masked, quoted row values removed, and cut to ``limit`` characters."""
    text = _URI_CREDENTIALS.sub(rf"\g<prefix>:{_MASK}@", message)
    text = _SECRET_PAIRS.sub(rf"\g<key>\g<sep>{_MASK}", text)
    text = _DETAIL_LINE.sub(r"\g<label> (row values removed)", text)
    text = _FAILING_ROW.sub(r"\1(row values removed)", text)
    text = _KEY_VALUES.sub(r"\1(values removed)", text)
    text = _QUOTED_VALUE.sub(rf"\g<lead>'{_MASK}'", text)
    text = text.strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def error_class_name(error: BaseException) -> str:
    """``module.Class`` of an exception (just ``Class`` for builtins), as shown to users."""
    cls = type(error)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def describe_error(error: BaseException | str | None) -> tuple[str | None, str | None]:
    """``(error class, scrubbed message)`` of what a callback context reports as the failure."""
    if error is None:
        return None, None
    if isinstance(error, BaseException):
        return error_class_name(error), scrub_error_message(str(error)) or None
    return None, scrub_error_message(str(error)) or None


EVENT_TITLES = {
    "task_failed": "Task failed",
    "task_retry": "Task will be retried",
    "task_succeeded": "Task succeeded",
    "run_failed": "Run failed",
    "run_succeeded": "Run succeeded",
    "deadline_missed": "Run missed its deadline",
}


@dataclass
class AlertMessage:
    """One alert, with every field a notifier may send. Only identifiers and scrubbed error text."""

    event: str
    dag_id: str | None = None
    run_id: str | None = None
    table: str | None = None
    task_id: str | None = None
    step: str | None = None
    try_number: int | None = None
    max_tries: int | None = None
    error_class: str | None = None
    error_message: str | None = None
    reason: str | None = None
    deadline: str | None = None
    log_url: str | None = None
    sent_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def title(self) -> str:
        return EVENT_TITLES.get(self.event, self.event)

    @property
    def subject(self) -> str:
        where = ".".join(part for part in (self.dag_id, self.task_id) if part)
        return f"[airflow-sync] {self.title}: {where}" if where else f"[airflow-sync] {self.title}"

    def facts(self) -> list[tuple[str, str]]:
        """Label/value pairs of the fields that are set, in reading order."""
        tries = None
        if self.try_number is not None:
            tries = f"{self.try_number} of {self.max_tries + 1}" if self.max_tries is not None else str(
                self.try_number
            )
        error = ": ".join(part for part in (self.error_class, self.error_message) if part) or None
        pairs = [
            ("DAG", self.dag_id),
            ("Table", self.table),
            ("Step", self.step),
            ("Task", self.task_id),
            ("Run", self.run_id),
            ("Try", tries),
            ("Reason", self.reason),
            ("Deadline", self.deadline),
            ("Error", error),
            ("Log", self.log_url),
        ]
        return [(label, value) for label, value in pairs if value]

    def as_text(self) -> str:
        lines = [self.subject.removeprefix("[airflow-sync] ")]
        lines += [f"{label}: {value}" for label, value in self.facts()]
        return "\n".join(lines)

    def as_html(self) -> str:
        rows = "".join(
            f"<tr><th align='left'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
            for label, value in self.facts()
        )
        return f"<p><b>{html.escape(self.title)}</b></p><table>{rows}</table>"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "title": self.title, "text": self.as_text()}


def _table_of(task: Any, task_id: str | None) -> str | None:
    """The table a task works on: its task group (one group per table), else the task id's prefix."""
    group = getattr(task, "task_group", None)
    group_id = getattr(group, "group_id", None)
    if group_id:
        return str(group_id).split(".")[0]
    if task_id and "." in task_id:
        return task_id.split(".")[0]
    return None


def _log_url(ti: Any) -> str | None:
    try:
        url = getattr(ti, "log_url", None)
    except Exception:  # the URL needs configuration a callback process may lack; an alert without it is fine
        return None
    return str(url) if url else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def message_from_task_context(event: str, context: Mapping[str, Any]) -> AlertMessage:
    """Alert for a task callback (``on_failure``/``on_retry``/``on_success``) or a DAG callback."""
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    task = context.get("task") or getattr(ti, "task", None)
    task_id = getattr(ti, "task_id", None)
    dag_id = getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None)
    run_id = context.get("run_id") or getattr(ti, "run_id", None)
    error_class, error_message = describe_error(context.get("exception"))
    message = AlertMessage(
        event=event,
        dag_id=dag_id,
        run_id=str(run_id) if run_id else None,
        error_class=error_class,
        error_message=error_message,
        reason=str(context["reason"]) if context.get("reason") else None,
    )
    if event.startswith("task_") and ti is not None:
        message.task_id = task_id
        message.step = task_id.rsplit(".", 1)[-1] if task_id else None
        message.table = _table_of(task, task_id)
        message.try_number = _int_or_none(getattr(ti, "try_number", None))
        message.max_tries = _int_or_none(getattr(ti, "max_tries", None))
        message.log_url = _log_url(ti)
    return message


def message_from_deadline_context(dag_id: str | None, context: Mapping[str, Any] | None) -> AlertMessage:
    """Alert for a missed deadline; the triggerer passes ``{"dag_run": {...}, "deadline": {...}}``."""
    context = context or {}
    dag_run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    deadline_time = deadline.get("deadline_time")
    if isinstance(deadline_time, datetime):
        deadline_time = deadline_time.isoformat(timespec="seconds")
    return AlertMessage(
        event="deadline_missed",
        dag_id=dag_run.get("dag_id") or dag_id,
        run_id=dag_run.get("dag_run_id") or dag_run.get("run_id"),
        deadline=str(deadline_time) if deadline_time else None,
        reason=f"run still {dag_run['state']} at its deadline" if dag_run.get("state") else None,
    )
