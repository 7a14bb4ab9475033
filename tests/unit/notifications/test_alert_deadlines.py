"""Deadline alerts: YAML -> the DeadlineAlert on the DAG, and its callback run the way the triggerer runs it.

``dag.test()`` never evaluates deadlines (and crashes on them in Airflow 3.3.2), so the callback is driven
through Airflow's own ``CallbackTrigger`` with the context the scheduler builds for a missed deadline.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import yaml
from airflow.sdk import DAG, AsyncCallback, DeadlineAlert  # type: ignore[attr-defined]
from airflow.sdk.definitions.deadline import DagRunLogicalDateDeadline, DagRunQueuedAtDeadline

from airflow_provider_sync.callbacks import (
    DEADLINE_CALLBACK_PATH,
    dag_kwargs_from_alerts,
    deadline_missed_async,
    task_kwargs_from_alerts,
)
from airflow_provider_sync.config.alerts import AlertsConfig
from airflow_provider_sync.errors import TransientError
from airflow_provider_sync.notifications.notifiers import LogNotifier, WebhookNotifier

ALERTS_YAML = """
on_failure: [log]
on_success: [{webhook: {conn_id: team_chat}}]
deadline:
  after: 45m
  notify:
    - webhook: {conn_id: team_chat, format: slack}
    - log: {level: error}
"""


def _alerts(text: str = ALERTS_YAML) -> AlertsConfig:
    return AlertsConfig.model_validate(yaml.safe_load(text))


def test_yaml_deadline_becomes_a_deadline_alert_on_the_dag() -> None:
    kwargs = dag_kwargs_from_alerts(_alerts(), dag_id="orders_sync")
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    with DAG("orders_sync", schedule=None, start_date=start, **kwargs) as dag:
        pass

    assert isinstance(dag.deadline, list) and len(dag.deadline) == 1
    alert = dag.deadline[0]
    assert isinstance(alert, DeadlineAlert)
    assert isinstance(alert.reference, DagRunQueuedAtDeadline)
    assert alert.interval == timedelta(minutes=45)
    assert isinstance(alert.callback, AsyncCallback)
    assert alert.callback.path == DEADLINE_CALLBACK_PATH
    assert DEADLINE_CALLBACK_PATH == "airflow_provider_sync.callbacks.deadline_missed_async"
    assert alert.callback.kwargs == {
        "dag_id": "orders_sync",
        "notify": [
            {"webhook": {"conn_id": "team_chat", "format": "slack", "timeout": "10s"}},
            {"log": {"level": "error"}},
        ],
    }
    json.dumps(alert.callback.kwargs)  # stored in the metadata DB: must be plain JSON


def test_logical_date_reference() -> None:
    alerts = _alerts("deadline: {after: 2h, from: logical_date, notify: [log]}")
    alert = dag_kwargs_from_alerts(alerts, dag_id="d")["deadline"]
    assert isinstance(alert.reference, DagRunLogicalDateDeadline)
    assert alert.interval == timedelta(hours=2)


def test_dag_and_task_kwargs_hold_the_right_notifiers() -> None:
    dag_kwargs = dag_kwargs_from_alerts(_alerts(), dag_id="orders_sync")
    assert set(dag_kwargs) == {"on_failure_callback", "on_success_callback", "deadline"}
    (run_failed,) = dag_kwargs["on_failure_callback"]
    assert isinstance(run_failed, LogNotifier)
    assert (run_failed.event, run_failed.skip_reasons) == ("run_failed", frozenset({"task_failure"}))
    (run_succeeded,) = dag_kwargs["on_success_callback"]
    assert isinstance(run_succeeded, WebhookNotifier) and run_succeeded.event == "run_succeeded"

    task_kwargs = task_kwargs_from_alerts(_alerts(), dag_id="orders_sync")
    assert set(task_kwargs) == {"on_failure_callback"}
    (task_failed,) = task_kwargs["on_failure_callback"]
    assert task_failed.event == "task_failed" and not task_failed.skip_reasons

    assert dag_kwargs_from_alerts(None, dag_id="x") == {} == task_kwargs_from_alerts(None, dag_id="x")
    assert dag_kwargs_from_alerts(AlertsConfig(), dag_id="x") == {}


def test_dag_with_alerts_serializes() -> None:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.serialization.serialized_objects import DagSerialization

    alerts = _alerts()
    with DAG(
        "serialized_alerts", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
        default_args=task_kwargs_from_alerts(alerts, dag_id="serialized_alerts"),
        **dag_kwargs_from_alerts(alerts, dag_id="serialized_alerts"),
    ) as dag:
        EmptyOperator(task_id="noop")
    serialized = DagSerialization.to_dict(dag)
    text = json.dumps(serialized)
    assert DEADLINE_CALLBACK_PATH in text
    assert serialized["dag"]["tasks"][0]["__var"]["has_on_failure_callback"] is True


def _triggerer_context(run_id: str) -> dict[str, Any]:
    return {
        "dag_run": {"dag_id": "orders_sync", "dag_run_id": run_id, "state": "running"},
        "deadline": {"id": "0193-7000", "deadline_time": "2025-06-01T07:45:00+00:00"},
    }


async def _run_trigger(kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    from airflow.triggers.callback import CallbackTrigger

    trigger = CallbackTrigger(callback_path=DEADLINE_CALLBACK_PATH, callback_kwargs=kwargs)
    return [event.payload async for event in trigger.run()]


def test_deadline_callback_runs_through_the_callback_trigger(
    webhook: Any, webhook_conn: str, caplog: pytest.LogCaptureFixture
) -> None:
    alerts = _alerts(ALERTS_YAML.replace("team_chat", webhook_conn))
    stored_kwargs = json.loads(json.dumps(dag_kwargs_from_alerts(alerts, dag_id="orders_sync")["deadline"]
                                          .callback.kwargs))

    events = asyncio.run(_run_trigger({**stored_kwargs, "context": _triggerer_context("manual__late")}))

    assert [event["state"] for event in events] == ["running", "success"]
    (request,) = webhook.requests
    text = request.body["text"]
    assert text.startswith("Run missed its deadline: orders_sync\n")
    assert "Run: manual__late" in text
    assert "Deadline: 2025-06-01T07:45:00+00:00" in text
    assert "Reason: run still running at its deadline" in text
    assert any("Run missed its deadline" in record.getMessage() for record in caplog.records)


def test_every_deadline_notifier_is_tried_and_failures_are_reported(
    webhook: Any, webhook_conn: str
) -> None:
    notify = [{"webhook": {"conn_id": "no_such_connection"}}, {"webhook": {"conn_id": webhook_conn}}]
    with pytest.raises(TransientError, match=r"1 notifier\(s\) failed: notify\[0\] \(WebhookNotifier"):
        asyncio.run(deadline_missed_async(notify=notify, dag_id="orders_sync",
                                          context=_triggerer_context("manual__x")))
    assert [request.body["event"] for request in webhook.requests] == ["deadline_missed"]
