"""One audit row: what a step (or a whole run) did, built from the Airflow context and the step's counts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_provider_sync.audit.schema import AUDIT_STATUSES, JSON_COLUMNS
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.notifications.message import describe_error


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _enum_text(value: Any) -> str | None:
    """``DagRunType.MANUAL`` -> ``manual``; plain strings unchanged."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def sha256_of_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes: which exact configuration a run used."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _provider_version() -> str:
    from airflow_provider_sync import __version__

    return __version__


@dataclass
class AuditRecord:
    """The values of one audit row; field names are the audit table's column names."""

    dag_id: str
    run_id: str
    step: str
    status: str = "success"
    run_type: str | None = None
    triggered_by: str | None = None
    task_id: str | None = None
    try_number: int | None = None
    table_name: str | None = None
    source: str | None = None
    target: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float | None = None
    rows_extracted: int | None = None
    rows_valid: int | None = None
    rows_rejected: int | None = None
    rejected_by_rule: Mapping[str, int] | None = None
    rows_masked: int | None = None
    rows_encrypted: int | None = None
    rows_loaded: int | None = None
    rows_skipped: int | None = None
    watermark_before: Any = None
    watermark_after: Any = None
    key_ids: list[str] | None = None
    config_path: str | None = None
    config_sha256: str | None = None
    provider_version: str | None = field(default_factory=_provider_version)
    error_class: str | None = None
    error_message: str | None = None
    warnings: list[str] | None = None
    rows_deleted: int | None = None

    def __post_init__(self) -> None:
        if self.status not in AUDIT_STATUSES:
            raise TerminalError(f"audit status {self.status!r} is not one of {', '.join(AUDIT_STATUSES)}")
        if not self.step:
            raise TerminalError("an audit record needs a step name (extract, load, ... or 'run')")
        self.started_at = _utc(self.started_at)
        self.ended_at = _utc(self.ended_at)

    @classmethod
    def from_context(cls, context: Mapping[str, Any], *, step: str, **values: Any) -> AuditRecord:
        """A record for the running task: DAG, run, run type, trigger, task and try come from ``context``
        (an Airflow task context); ``values`` set any other column. ``started_at`` defaults to now."""
        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", None)
        run_id = getattr(ti, "run_id", None) or context.get("run_id") or getattr(dag_run, "run_id", None)
        if not dag_id or not run_id:
            raise TerminalError("the Airflow context has no DAG id or run id; audit records need both")
        return cls(
            dag_id=str(dag_id),
            run_id=str(run_id),
            step=step,
            run_type=_enum_text(getattr(dag_run, "run_type", None)),
            triggered_by=_enum_text(getattr(dag_run, "triggered_by", None)),
            task_id=getattr(ti, "task_id", None),
            try_number=getattr(ti, "try_number", None),
            **{"started_at": _now(), **values},
        )

    def succeeded(self, *, ended_at: datetime | None = None, **values: Any) -> AuditRecord:
        """A copy marked ``success`` that ends now (or at ``ended_at``), with ``values`` set."""
        return self._ended("success", ended_at, values)

    def failed(
        self, error: BaseException | str, *, ended_at: datetime | None = None, **values: Any
    ) -> AuditRecord:
        """A copy marked ``failed`` with the error's class and scrubbed message (no secrets, no row
        values)."""
        error_class, error_message = describe_error(error)
        return self._ended(
            "failed", ended_at, {"error_class": error_class, "error_message": error_message, **values}
        )

    def _ended(self, status: str, ended_at: datetime | None, values: dict[str, Any]) -> AuditRecord:
        end = _utc(ended_at) or _now()
        duration = (end - self.started_at).total_seconds() if self.started_at else None
        return replace(self, status=status, ended_at=end, duration_s=duration, **values)

    def column_values(self) -> dict[str, Any]:
        """Values by column name, ready to bind: JSON columns as compact JSON text, timestamps in UTC."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in JSON_COLUMNS:
            if values[name] is not None:
                values[name] = json.dumps(values[name], sort_keys=True, separators=(",", ":"), default=str)
        return values
