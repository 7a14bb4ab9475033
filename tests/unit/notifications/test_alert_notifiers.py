"""Each notifier against a real receiver: a local HTTP server, a local SMTP server, the log."""

from __future__ import annotations

import asyncio
import email
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_sync.errors import TerminalError, TransientError
from airflow_provider_sync.notifications.message import AlertMessage
from airflow_provider_sync.notifications.notifiers import (
    ALERT_LOGGER,
    EmailNotifier,
    LogNotifier,
    WebhookNotifier,
    notifier_from_config,
)
from airflow_provider_sync.notifications.webhook import webhook_target

ROW_VALUE = "4111-1111-1111-1111"


def _failure_context() -> dict[str, Any]:
    task = SimpleNamespace(task_group=SimpleNamespace(group_id="payments"))
    ti = SimpleNamespace(dag_id="billing_sync", task_id="payments.load", run_id="manual__2025-05-05",
                         try_number=3, max_tries=3, task=task, log_url="http://af/log")
    error = TerminalError(f"load failed\nDETAIL:  Key (card)=({ROW_VALUE}) already exists.")
    return {"ti": ti, "task": task, "exception": error}


def test_webhook_json_payload_field_by_field(webhook: Any, webhook_conn: str) -> None:
    notifier = notifier_from_config({"webhook": {"conn_id": webhook_conn}}, event="task_failed")
    notifier(_failure_context())  # the way Airflow calls a callback

    assert len(webhook.requests) == 1
    request = webhook.requests[0]
    assert request.path == "/hooks/team"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Team"] == "data"
    body = request.body
    assert body["event"] == "task_failed"
    assert body["title"] == "Task failed"
    assert body["dag_id"] == "billing_sync"
    assert body["table"] == "payments"
    assert body["step"] == "load"
    assert body["task_id"] == "payments.load"
    assert body["run_id"] == "manual__2025-05-05"
    assert (body["try_number"], body["max_tries"]) == (3, 3)
    assert body["error_class"] == "airflow_provider_sync.errors.TerminalError"
    assert body["error_message"] == "load failed\nDETAIL: (row values removed)"
    assert body["log_url"] == "http://af/log"
    assert body["reason"] is None and body["deadline"] is None
    assert body["sent_at"].endswith("+00:00")
    assert body["text"].startswith("Task failed: billing_sync.payments.load\n")
    assert set(body) == {
        "event", "title", "dag_id", "run_id", "table", "task_id", "step", "try_number", "max_tries",
        "error_class", "error_message", "reason", "deadline", "log_url", "sent_at", "text",
    }
    assert ROW_VALUE.encode() not in request.raw


def test_webhook_slack_format_is_text_only(webhook: Any, webhook_conn: str) -> None:
    notifier_from_config({"webhook": {"conn_id": webhook_conn, "format": "slack"}}, event="task_retry")(
        _failure_context()
    )
    body = webhook.requests[0].body
    assert list(body) == ["text"]
    assert body["text"].startswith("Task will be retried: billing_sync.payments.load")
    assert "Try: 3 of 4" in body["text"]
    assert ROW_VALUE not in body["text"]


@pytest.mark.parametrize(("status", "error"), [(503, TransientError), (429, TransientError),
                                               (404, TerminalError), (401, TerminalError)])
def test_webhook_http_errors_are_classified_and_never_show_the_url(
    webhook: Any, webhook_conn: str, status: int, error: type[Exception]
) -> None:
    webhook.status = status
    notifier = WebhookNotifier(conn_id=webhook_conn, event="task_failed")
    with pytest.raises(error) as caught:
        notifier.send(AlertMessage(event="task_failed", dag_id="d"))
    assert f"HTTP {status}" in str(caught.value)
    assert webhook.url not in str(caught.value) and "hooks/team" not in str(caught.value)


def test_unreachable_webhook_is_transient_and_hides_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DEAD_HOOK", json.dumps({"conn_type": "http", "host": "http://127.0.0.1:1/T/s3cr3t"}))
    with pytest.raises(TransientError) as caught:
        WebhookNotifier(conn_id="dead_hook", event="task_failed", timeout_s=2).send(AlertMessage(event="x"))
    assert "s3cr3t" not in str(caught.value) and "127.0.0.1" not in str(caught.value)


def test_webhook_async_path(webhook: Any, webhook_conn: str) -> None:
    notifier = WebhookNotifier(conn_id=webhook_conn, event="task_failed")
    asyncio.run(notifier.async_notify(_failure_context()))
    assert webhook.requests[0].body["task_id"] == "payments.load"


def test_webhook_target_from_connection_parts() -> None:
    extra = {"endpoint": "/v1/alerts", "headers": {"X-K": 1}}
    connection = SimpleNamespace(host="hooks.example.com", schema="https", port=8443, login="bot",
                                 password="pw", extra_dejson=extra)
    target = webhook_target(connection, "c")
    assert target.url == "https://hooks.example.com:8443/v1/alerts"
    assert target.headers == {"X-K": "1"}
    assert target.auth == ("bot", "pw")
    assert "pw" not in repr(target) and "hooks.example.com" not in repr(target)
    full = SimpleNamespace(host="https://h.example/services/T/B/X", schema=None, port=None, login=None,
                           password=None, extra_dejson={})
    assert webhook_target(full, "c").url == "https://h.example/services/T/B/X"
    nothing: dict[str, Any] = {"port": None, "login": None, "password": None, "extra_dejson": {}}
    no_host = SimpleNamespace(host="", schema=None, **nothing)
    for bad in (no_host, SimpleNamespace(host="h", schema="ftp", **nothing)):
        with pytest.raises(TerminalError, match="webhook connection 'c'"):
            webhook_target(bad, "c")


def test_log_notifier_writes_one_line_at_the_configured_level(caplog: pytest.LogCaptureFixture) -> None:
    notifier = LogNotifier(level="error", event="task_failed")
    with caplog.at_level(logging.DEBUG, logger=ALERT_LOGGER):
        notifier(_failure_context())
    records = [record for record in caplog.records if record.name == ALERT_LOGGER]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    line = records[0].getMessage()
    assert line.startswith("Task failed: billing_sync.payments.load | DAG: billing_sync | Table: payments")
    assert ROW_VALUE not in line


def test_email_notifier_sends_through_the_smtp_connection(smtp: Any) -> None:
    notifier = notifier_from_config(
        {"email": {"to": ["oncall@example.com", "data@example.com"], "conn_id": "alerts_smtp"}},
        event="task_failed",
    )
    assert isinstance(notifier, EmailNotifier)
    notifier(_failure_context())

    assert len(smtp.messages) == 1
    sent = smtp.messages[0]
    assert sent["from"] == "airflow@example.com"
    assert sent["rcpt"] == ["oncall@example.com", "data@example.com"]
    parsed = email.message_from_bytes(sent["data"])
    assert parsed["Subject"] == "[airflow-sync] Task failed: billing_sync.payments.load"
    html = next(part for part in parsed.walk() if part.get_content_type() == "text/html")
    body = bytes(html.get_payload(decode=True)).decode()
    assert "<th align='left'>Table</th><td>payments</td>" in body
    assert "airflow_provider_sync.errors.TerminalError" in body
    assert ROW_VALUE not in sent["data"].decode()


def test_email_notifier_async_path(smtp: Any) -> None:
    notifier = EmailNotifier(to=["oncall@example.com"], conn_id="alerts_smtp", event="deadline_missed")
    asyncio.run(notifier.send_async(AlertMessage(event="deadline_missed", dag_id="billing_sync")))
    parsed = email.message_from_bytes(smtp.messages[0]["data"])
    assert parsed["Subject"] == "[airflow-sync] Run missed its deadline: billing_sync"


def test_dag_failure_notifier_skips_runs_failed_by_a_task(webhook: Any, webhook_conn: str) -> None:
    notifier = WebhookNotifier(conn_id=webhook_conn, event="run_failed", skip_reasons=("task_failure",))
    dag = SimpleNamespace(dag_id="billing_sync")
    notifier({"dag": dag, "run_id": "r1", "reason": "task_failure"})
    notifier({"dag": dag, "run_id": "r2", "reason": "timed_out"})
    assert [(r.body["event"], r.body["run_id"], r.body["reason"]) for r in webhook.requests] == [
        ("run_failed", "r2", "timed_out")
    ]


def test_notifier_settings_are_validated_when_built_directly() -> None:
    with pytest.raises(ValueError, match="log level 'loud'"):
        LogNotifier(level="loud", event="task_failed")
    with pytest.raises(ValueError, match="webhook format 'xml'"):
        WebhookNotifier(conn_id="c", format="xml", event="task_failed")
