"""Turn a pipeline's ``alerts:`` section into Airflow callbacks and Deadline Alerts.

Where each alert fires:

- ``on_failure``: every failed task (task callback: carries the error, try number and log link), plus a
  DAG-level callback for runs that fail *without* a failed task (run timeout, deadlocked tasks); runs that
  failed through a task are not reported twice.
- ``on_retry``: every task attempt that failed but will be retried (task callback).
- ``on_success``: once per successful run (DAG callback), not once per task.
- ``deadline``: an Airflow Deadline Alert whose callback, :func:`deadline_missed_async`, runs in the
  triggerer. It needs the scheduler and the triggerer; ``dag.test()`` does not evaluate deadlines.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TransientError

if TYPE_CHECKING:
    from airflow_provider_sync.config.alerts import AlertsConfig, NotifierConfig
    from airflow_provider_sync.notifications.notifiers import SyncNotifier

DEADLINE_CALLBACK_PATH = "airflow_provider_sync.callbacks.deadline_missed_async"
# A DAG-level failure with this reason was caused by a failed task, whose own callback already alerted.
TASK_FAILURE_REASON = "task_failure"

log = logging.getLogger(__name__)


def _notifiers(
    entries: Sequence[NotifierConfig], *, event: str, skip_reasons: Sequence[str] = ()
) -> list[SyncNotifier]:
    from airflow_provider_sync.notifications.notifiers import notifier_from_config

    return [notifier_from_config(entry, event=event, skip_reasons=skip_reasons) for entry in entries]


def task_kwargs_from_alerts(alerts: AlertsConfig | None, *, dag_id: str) -> dict[str, Any]:
    """Task callbacks for ``default_args``: ``on_failure_callback`` and ``on_retry_callback`` (only the
    keys with at least one notifier, so defaults set elsewhere are not overwritten with empty lists)."""
    if alerts is None:
        return {}
    kwargs: dict[str, Any] = {}
    if alerts.on_failure:
        kwargs["on_failure_callback"] = _notifiers(alerts.on_failure, event="task_failed")
    if alerts.on_retry:
        kwargs["on_retry_callback"] = _notifiers(alerts.on_retry, event="task_retry")
    return kwargs


def dag_kwargs_from_alerts(alerts: AlertsConfig | None, *, dag_id: str) -> dict[str, Any]:
    """DAG arguments: ``on_failure_callback``, ``on_success_callback`` and ``deadline``, as configured."""
    if alerts is None:
        return {}
    kwargs: dict[str, Any] = {}
    if alerts.on_failure:
        kwargs["on_failure_callback"] = _notifiers(
            alerts.on_failure, event="run_failed", skip_reasons=(TASK_FAILURE_REASON,)
        )
    if alerts.on_success:
        kwargs["on_success_callback"] = _notifiers(alerts.on_success, event="run_succeeded")
    if alerts.deadline is not None:
        kwargs["deadline"] = deadline_alert(alerts, dag_id=dag_id)
    return kwargs


def deadline_alert(alerts: AlertsConfig, *, dag_id: str) -> Any:
    """The :class:`airflow.sdk.DeadlineAlert` for ``alerts.deadline`` (which must be set)."""
    # Exported by airflow.sdk at run time, but missing from its type stub in Airflow 3.3.
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference  # type: ignore[attr-defined]

    deadline = alerts.deadline
    if deadline is None:
        raise ValueError("alerts.deadline is not set")
    reference = (
        DeadlineReference.DAGRUN_LOGICAL_DATE if deadline.from_ == "logical_date"
        else DeadlineReference.DAGRUN_QUEUED_AT
    )
    # Callback kwargs are stored in the metadata DB and sent to the triggerer: plain JSON only, and only
    # names of connections, never their contents.
    notify = [entry.model_dump(mode="json", by_alias=True, exclude_none=True) for entry in deadline.notify]
    return DeadlineAlert(
        reference=reference,
        interval=deadline.after,
        callback=AsyncCallback(DEADLINE_CALLBACK_PATH, kwargs={"dag_id": dag_id, "notify": notify}),
    )


async def deadline_missed_async(
    *, notify: list[dict[str, Any]], dag_id: str | None = None, context: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    """Deadline Alert callback (runs in the triggerer): send the configured notifiers a "run is late" alert.

    Every notifier is tried even if an earlier one fails; the failures are then raised together so the
    callback shows as failed in Airflow.
    """
    from airflow_provider_sync.notifications.message import message_from_deadline_context
    from airflow_provider_sync.notifications.notifiers import notifier_from_config

    message = message_from_deadline_context(dag_id, context)
    failed: list[str] = []
    for index, entry in enumerate(notify):
        notifier = notifier_from_config(entry, event="deadline_missed")
        try:
            await notifier.send_async(message)
        except Exception as exc:
            failed.append(f"notify[{index}] ({type(notifier).__name__}: {type(exc).__name__})")
            log.exception("Deadline notifier %s of DAG %s failed", index, dag_id)
    if failed:
        raise TransientError(f"deadline alert for DAG {dag_id!r}: {len(failed)} notifier(s) failed: "
                             + ", ".join(failed))
