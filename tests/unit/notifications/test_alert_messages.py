"""Alert text: built from real callback contexts, and scrubbed of credentials and row values."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_sync.errors import IncompatibleSchemaError
from airflow_provider_sync.notifications.message import (
    AlertMessage,
    describe_error,
    message_from_deadline_context,
    message_from_task_context,
    scrub_error_message,
)


@pytest.mark.parametrize(
    ("raw", "must_keep", "must_drop"),
    [
        ("could not connect to postgresql://sync:S3cret!@db.internal:5432/sales",
         "postgresql://sync:***@db.internal:5432/sales", "S3cret!"),
        ("dsn host=db user=sync password=S3cret dbname=sales", "password=***", "S3cret"),
        ('config {"api_key": "abc123XYZ", "region": "eu"}', '"api_key": ***', "abc123XYZ"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload", "Authorization: ***", "eyJhbGci"),
        ('duplicate key value violates unique constraint "users_email_key"\n'
         "DETAIL:  Key (email)=(alice@example.com) already exists.",
         'unique constraint "users_email_key"', "alice@example.com"),
        ("Key (customer_id, email)=(42, bob@example.com) already exists.", "Key (customer_id, email)=",
         "bob@example.com"),
        ('new row for relation "t" violates check constraint "c"\nFailing row contains (7, carol, 555-0101).',
         'relation "t"', "555-0101"),
        ("(1062, \"Duplicate entry 'dave@example.com' for key 'users.email'\")", "for key 'users.email'",
         "dave@example.com"),
        ("(1366, \"Incorrect integer value: 'N/A-4711' for column `qty` at row 1\")", "for column `qty`",
         "N/A-4711"),
        ('invalid input syntax for type integer: "12abc"', "invalid input syntax for type integer", "12abc"),
        ("Could not convert 'Zürich-8001' with type str: tried to convert to int64",
         "tried to convert to int64", "Zürich-8001"),
    ],
)
def test_scrub_removes_secrets_and_row_values_but_keeps_the_explanation(
    raw: str, must_keep: str, must_drop: str
) -> None:
    scrubbed = scrub_error_message(raw)
    assert must_drop not in scrubbed
    assert must_keep in scrubbed


def test_scrub_leaves_harmless_messages_alone_and_cuts_long_ones() -> None:
    plain = 'relation "public.orders" does not exist'
    assert scrub_error_message(plain) == plain
    assert scrub_error_message("password authentication failed for user \"sync\"") == (
        'password authentication failed for user "sync"'
    )
    long = scrub_error_message("x" * 5000, limit=200)
    assert len(long) == 200 and long.endswith("…")


def test_describe_error_names_the_class_with_its_module() -> None:
    assert describe_error(IncompatibleSchemaError("column 'amount' is missing in the target")) == (
        "airflow_provider_sync.errors.IncompatibleSchemaError",
        "column 'amount' is missing in the target",
    )
    assert describe_error(ValueError("bad")) == ("ValueError", "bad")
    assert describe_error(None) == (None, None)
    assert describe_error("Task received SIGTERM") == (None, "Task received SIGTERM")


def _task_context(**overrides: Any) -> dict[str, Any]:
    group = SimpleNamespace(group_id="customers")
    task = SimpleNamespace(task_group=group)
    ti = SimpleNamespace(
        dag_id="crm_sync", task_id="customers.load", run_id="scheduled__2025-01-02T00:00:00+00:00",
        try_number=2, max_tries=3, task=task, log_url="http://airflow:8080/dags/crm_sync/runs/r/tasks/t",
    )
    return {"ti": ti, "task": task, "run_id": ti.run_id, **overrides}


def test_task_failure_message_fields() -> None:
    error = IncompatibleSchemaError("target column 'vip' has type boolean, rows carry text")
    message = message_from_task_context("task_failed", _task_context(exception=error))

    assert message.event == "task_failed"
    assert (message.dag_id, message.table, message.step, message.task_id) == (
        "crm_sync", "customers", "load", "customers.load"
    )
    assert message.run_id == "scheduled__2025-01-02T00:00:00+00:00"
    assert (message.try_number, message.max_tries) == (2, 3)
    assert message.error_class == "airflow_provider_sync.errors.IncompatibleSchemaError"
    assert message.log_url == "http://airflow:8080/dags/crm_sync/runs/r/tasks/t"
    text = message.as_text()
    assert text.splitlines()[0] == "Task failed: crm_sync.customers.load"
    assert "Try: 2 of 4" in text
    assert message.subject == "[airflow-sync] Task failed: crm_sync.customers.load"


def test_html_body_escapes_error_text() -> None:
    message = AlertMessage(event="task_failed", dag_id="d", error_message="<script>alert(1)</script>")
    assert "<script>" not in message.as_html()
    assert "&lt;script&gt;" in message.as_html()


def test_run_level_message_has_no_task_details() -> None:
    dag = SimpleNamespace(dag_id="crm_sync")
    context = {**_task_context(), "dag": dag, "run_id": "manual__1", "reason": "timed_out"}
    message = message_from_task_context("run_failed", context)
    assert (message.dag_id, message.run_id, message.reason) == ("crm_sync", "manual__1", "timed_out")
    assert message.task_id is None and message.try_number is None and message.log_url is None


def test_deadline_message_from_the_triggerer_context() -> None:
    context = {
        "dag_run": {"dag_id": "crm_sync", "dag_run_id": "manual__2", "state": "running"},
        "deadline": {"id": "0193", "deadline_time": datetime(2025, 3, 1, 6, 30, tzinfo=timezone.utc)},
    }
    message = message_from_deadline_context("crm_sync", context)
    assert message.event == "deadline_missed"
    assert (message.dag_id, message.run_id) == ("crm_sync", "manual__2")
    assert message.deadline == "2025-03-01T06:30:00+00:00"
    assert message.reason == "run still running at its deadline"
    assert message_from_deadline_context("other", None).dag_id == "other"
