"""ReconcileOperator: every N runs (or once per schedule period), delete target rows the source lost."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.operators.base import StepOutcome, SyncTableOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


def reconcile_state_key(dag_id: str, table: str) -> str:
    return f"sync_reconcile:{dag_id}:{table}"


def is_due(every: int | str, state: dict[str, Any], now: dt.datetime) -> bool:
    """Whether this run reconciles: the Nth run since the last reconcile, or the schedule's next time
    after the last reconcile has come (the first run with a schedule always reconciles)."""
    if isinstance(every, int):
        return int(state.get("runs_since", 0)) + 1 >= every
    last = state.get("last")
    if last is None:
        return True
    from croniter import croniter

    following: dt.datetime = croniter(every, dt.datetime.fromisoformat(last)).get_next(dt.datetime)
    return now >= following


class ReconcileOperator(SyncTableOperator):
    """Runs after the load when ``deletes.reconcile`` is set; a run that is not due only counts itself."""

    ui_color = "#f6e3e3"
    audit_step = "reconcile"

    def run(self, context: Context) -> StepOutcome:
        from airflow.sdk import Variable

        from airflow_provider_sync.dialects.types import TableRef
        from airflow_provider_sync.pipeline.reconcile import DEFAULT_MAX_DELETE_RATIO, reconcile_keys
        from airflow_provider_sync.pipeline.specs import load_spec_for

        deletes, key = self.table.deletes, reconcile_state_key(self.pipeline_dag_id, self.table.name)
        every = deletes.reconcile
        assert every is not None  # the builder adds this task only then
        state = json.loads(Variable.get(key, default="{}") or "{}")
        now = dt.datetime.now(dt.timezone.utc)
        manifest = self.input_manifest(context)
        if not is_due(every, state, now):
            state["runs_since"] = int(state.get("runs_since", 0)) + 1
            Variable.set(key, json.dumps(state))
            self.log.info("Reconcile not due (%s; %s)", every, state)
            return StepOutcome({"reconciled": False, **state}, {"rows_deleted": 0})
        spec = load_spec_for(
            self.table, self.pipeline_dag_id, self.connection_info(self.table.target.conn_id)
        )
        result = reconcile_keys(
            self.connection_info(self.table.source.conn_id),
            TableRef.parse(str(self.table.source.table)),
            spec,
            manifest,
            max_delete_ratio=deletes.max_delete_ratio or DEFAULT_MAX_DELETE_RATIO,
            batch_size=self.table.incremental.batch_size,
            logger=self.log,  # type: ignore[arg-type]  # Airflow's logger has the stdlib interface
        )
        Variable.set(key, json.dumps({"runs_since": 0, "last": now.isoformat()}))
        return StepOutcome({"reconciled": True, **result.to_json()}, {"rows_deleted": result.deleted})
