"""Alerts and the retry policy inside real DAG runs (``dag.test()`` on a fresh metadata DB).

One DAG covers the failure path (a terminal error fails on try 1 despite retries=3; a transient error is
retried once and then succeeds; alerts go to a real local webhook), one the success path.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.callbacks import dag_kwargs_from_alerts, task_kwargs_from_alerts
from airflow_provider_sync.config.alerts import AlertsConfig
from airflow_provider_sync.errors import TerminalError, TransientError
from airflow_provider_sync.resilience import build_retry_policy

SECRET_ROW_VALUE = "alice.secret@example.com"
DB_PASSWORD = "hunter2pw"

ATTEMPTS: dict[str, int] = {}


def _register(dag: Any) -> None:
    """Serialize a DAG built in a test into the metadata DB, as ``dag.test()`` requires."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()  # type: ignore[no-untyped-call]
    bag = DagBag(dag_folder="/dev/null", collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def _terminal_step() -> None:
    raise TerminalError(
        f"target rejected the batch: postgresql://loader:{DB_PASSWORD}@db.internal/sales\n"
        f'DETAIL:  Key (email)=({SECRET_ROW_VALUE}) already exists.'
    )


def _flaky_step() -> str:
    ATTEMPTS["flaky"] = ATTEMPTS.get("flaky", 0) + 1
    if ATTEMPTS["flaky"] == 1:
        raise TransientError("connection reset by peer")
    return "done"


def _build_dag(dag_id: str, alerts: AlertsConfig, callables: dict[str, Any]) -> Any:
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG, TaskGroup

    default_args = {
        "retries": 3,
        "retry_delay": timedelta(seconds=1),
        "retry_policy": build_retry_policy(),
        **task_kwargs_from_alerts(alerts, dag_id=dag_id),
    }
    with DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
        default_args=default_args,
        **dag_kwargs_from_alerts(alerts, dag_id=dag_id),
    ) as dag, TaskGroup("orders"):
        for task_id, python_callable in callables.items():
            PythonOperator(task_id=task_id, python_callable=python_callable)
    return dag


def _task_instances(dag_run: Any) -> dict[str, Any]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        return {ti.task_id: (ti.state, ti.try_number) for ti in tis}


@pytest.mark.slow
def test_terminal_fails_at_once_transient_retries_and_alerts_reach_the_webhook(
    airflow_db: Path, webhook: Any, webhook_conn: str
) -> None:
    alerts = AlertsConfig.model_validate(
        {
            "on_failure": [{"webhook": {"conn_id": webhook_conn}}, "log"],
            "on_retry": [{"webhook": {"conn_id": webhook_conn, "format": "slack"}}],
        }
    )
    dag = _build_dag("alerts_failure_path", alerts, {"load": _terminal_step, "extract": _flaky_step})
    _register(dag)

    dag_run = dag.test()

    assert dag_run.state == "failed"
    states = _task_instances(dag_run)
    assert states["orders.load"] == ("failed", 1)  # retries=3, yet no second try
    assert states["orders.extract"] == ("success", 2)  # one retry after the transient error
    assert ATTEMPTS["flaky"] == 2

    bodies = [request.body for request in webhook.requests]
    assert all(request.path == "/hooks/team" for request in webhook.requests)
    assert all(request.headers.get("X-Team") == "data" for request in webhook.requests)
    failures = [body for body in bodies if body.get("event") == "task_failed"]
    retries = [body for body in bodies if "text" in body and "event" not in body]
    # The run failed through a task: the task alerted, the DAG-level failure callback stays quiet.
    assert len(failures) == 1, bodies
    assert not [body for body in bodies if body.get("event") == "run_failed"]
    assert len(retries) == 1, bodies

    failure = failures[0]
    assert failure["dag_id"] == "alerts_failure_path"
    assert failure["table"] == "orders"
    assert failure["task_id"] == "orders.load"
    assert failure["step"] == "load"
    assert failure["run_id"] == dag_run.run_id
    assert failure["try_number"] == 1
    assert failure["max_tries"] == 3
    assert failure["error_class"] == "airflow_provider_sync.errors.TerminalError"
    assert failure["error_message"].startswith("target rejected the batch: postgresql://loader:***@db.internal")
    assert "DETAIL: (row values removed)" in failure["error_message"]
    assert failure["log_url"].endswith("/tasks/orders.load?try_number=1")
    assert "Task failed" in failure["text"]

    retry_text = retries[0]["text"]
    assert "Task will be retried" in retry_text
    assert "orders.extract" in retry_text and "TransientError: connection reset by peer" in retry_text
    assert "Try: 1 of 4" in retry_text

    every_byte = b"".join(request.raw for request in webhook.requests)
    assert SECRET_ROW_VALUE.encode() not in every_byte
    assert DB_PASSWORD.encode() not in every_byte


@pytest.mark.slow
def test_successful_run_alerts_once_per_run(airflow_db: Path, webhook: Any, webhook_conn: str) -> None:
    alerts = AlertsConfig.model_validate(
        {
            "on_success": [{"webhook": {"conn_id": webhook_conn}}],
            "on_failure": [{"webhook": {"conn_id": webhook_conn}}],
        }
    )
    dag = _build_dag("alerts_success_path", alerts, {"extract": lambda: 1, "load": lambda: 2})
    _register(dag)

    dag_run = dag.test()

    assert dag_run.state == "success"
    events = [request.body["event"] for request in webhook.requests]
    assert events == ["run_succeeded"]
    body = webhook.requests[0].body
    assert body["dag_id"] == "alerts_success_path"
    assert body["run_id"] == dag_run.run_id
    assert body["task_id"] is None and body["error_class"] is None
