"""``ForgetSubjectOperator``: erase one data subject from everything a pipeline wrote (GDPR art. 17).

    ForgetSubjectOperator(
        task_id="forget_customer",
        pipeline="/opt/airflow/dag_configs/crm_to_warehouse.yaml",   # the pipeline file
        subject_column="customer_id",
        value_param="customer_id",   # read from dag_run.conf / params when the task runs
        mode="delete",               # or "pseudonymise"
    )

Deletes (or pseudonymises) the subject's rows in every target table of the pipeline and its quarantine
rows, deletes the subject's keys (crypto-shredding the values encrypted ``per_subject`` everywhere they
were copied), removes staged run folders that hold the subject, and writes one audit row per table naming
the subject only by a keyed HMAC (see ``pipeline/erasure.py``). The value is read when the task runs from
``dag_run.conf`` (or the DAG's ``params``) under ``value_param``, so it never sits in DAG code nor in the
rendered template fields; it is never logged nor pushed to XCom. ``value`` may be given instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_sync.config.resolve import Pipeline
    from airflow_provider_sync.core.keyring import Keyring
    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.pipeline.erasure import ErasurePlan


def plan_for_pipeline(
    pipeline: Pipeline,
    subject_column: str,
    *,
    info_of: Callable[[str], ConnectionInfo],
    keyring_of: Callable[[str], Keyring],
    keyring_conn_id: str | None = None,
    tables: Sequence[str] = (),
) -> ErasurePlan:
    """The erasure plan of a pipeline: its tables (or only ``tables``), staging and audit table."""
    from airflow_provider_sync.audit.writer import audit_table
    from airflow_provider_sync.config.audit import AuditConfig
    from airflow_provider_sync.errors import TerminalError
    from airflow_provider_sync.operators.base import default_staging_base
    from airflow_provider_sync.pipeline.erasure import plan_erasure
    from airflow_provider_sync.staging.files import staging_root

    specs = [spec for spec in pipeline.tables if not tables or spec.name in tables]
    unknown = sorted(set(tables) - {spec.name for spec in pipeline.tables})
    if unknown or not specs:
        raise TerminalError(
            f"pipeline {pipeline.dag_id!r} has no table(s) {unknown}; its tables: "
            f"{[spec.name for spec in pipeline.tables]}"
        )
    model: Any = pipeline.model
    settings = model.audit if model.audit is not None else AuditConfig()
    audit = None
    if settings.enabled:
        audit = (settings.conn_id or str(specs[0].target.conn_id), audit_table(settings))
    return plan_erasure(
        pipeline.dag_id,
        specs,
        subject_column,
        info_of=info_of,
        keyring_of=keyring_of,
        keyring_conn_id=keyring_conn_id,
        staging_root_of=lambda spec: staging_root(
            spec.staging.base or default_staging_base(), spec.staging.conn_id
        ),
        audit=audit,
    )


def _connection_info(conn_id: str) -> ConnectionInfo:
    from airflow.sdk import BaseHook

    from airflow_provider_sync.dialects.connection import ConnectionInfo

    return ConnectionInfo.from_airflow(BaseHook.get_connection(conn_id))


class ForgetSubjectOperator(BaseOperator):
    """Erase the data subject ``value`` of ``subject_column`` from the pipeline's tables (see module docs).

    Returns (XCom) the counts per table and the subject's keyed HMAC, never the value."""

    # The value is not a template field: rendered fields are stored in the metadata database and shown in
    # the UI. Pass it as ``value_param``, the name of a DAG param / ``dag_run.conf`` key read at run time.
    template_fields: Sequence[str] = ("pipeline", "subject_column", "mode")
    ui_color = "#f7e0e0"

    def __init__(
        self,
        *,
        pipeline: str,
        subject_column: str,
        value: str | None = None,
        value_param: str | None = None,
        mode: str = "delete",
        dry_run: bool = False,
        keyring_conn_id: str | None = None,
        tables: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.subject_column = subject_column
        self.value = value
        self.value_param = value_param
        self.mode = mode
        self.count_only = dry_run  # BaseOperator.dry_run is a method
        self.keyring_conn_id = keyring_conn_id
        self.tables = list(tables)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_sync.errors import TerminalError
        from airflow_provider_sync.operators.steps import keyring_from_connection
        from airflow_provider_sync.pipeline.erasure import forget_subject

        value = self._subject_value(context)
        if not value:
            raise TerminalError(
                f"ForgetSubjectOperator {self.task_id!r} has no subject value: trigger it with "
                f"conf {{{self.value_param or 'value_param'!r}: ...}} or set value"
            )
        from airflow_provider_sync.config.resolve import load_pipeline

        plan = plan_for_pipeline(
            load_pipeline(self.pipeline),
            self.subject_column,
            info_of=_connection_info,
            keyring_of=keyring_from_connection,
            keyring_conn_id=self.keyring_conn_id,
            tables=self.tables,
        )
        result = forget_subject(plan, value, mode=self.mode, dry_run=self.count_only, logger=self.log)
        self.log.info(
            "forget %s (%s%s): rows %s, quarantine rows %s, subject keys deleted %d, staged folders %s",
            result.subject,
            result.mode,
            ", dry run" if result.dry_run else "",
            result.rows,
            result.quarantine_rows,
            result.subject_keys_deleted,
            result.staged_folders_removed,
        )
        return result.to_json()

    def _subject_value(self, context: Context) -> str:
        if self.value_param is None:
            return str(self.value or "").strip()
        dag_run = context.get("dag_run")
        conf = getattr(dag_run, "conf", None) or {}
        params = context.get("params") or {}
        found = conf.get(self.value_param, params.get(self.value_param))
        return "" if found is None else str(found).strip()
