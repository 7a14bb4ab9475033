"""What a DAG file imports for alerts and retries must not add pyarrow, cryptography or drivers to what
Airflow itself already loads."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pyarrow", "cryptography", "psycopg", "psycopg2", "MySQLdb", "oracledb", "pymssql",
         "confluent_kafka", "clickhouse_connect", "airflow.providers.smtp")

PROBE = """
import json, sys
from airflow.sdk import DAG, AsyncCallback, BaseNotifier, DeadlineAlert, ExceptionRetryPolicy
airflow_only = set(sys.modules)
from airflow_provider_sync.callbacks import dag_kwargs_from_alerts, task_kwargs_from_alerts
from airflow_provider_sync.config.alerts import AlertsConfig
from airflow_provider_sync.config.audit import AuditConfig
from airflow_provider_sync.resilience import build_retry_policy
import airflow_provider_sync.audit.record
alerts = AlertsConfig.model_validate({
    "on_failure": ["log", {"email": {"to": "a@example.com"}}, {"webhook": {"conn_id": "w"}}],
    "deadline": {"after": "1h", "notify": ["log"]},
})
dag_kwargs_from_alerts(alerts, dag_id="d"); task_kwargs_from_alerts(alerts, dag_id="d"); build_retry_policy()
AuditConfig()
print(json.dumps(sorted(set(sys.modules) - airflow_only)))
"""


def test_parse_time_imports_stay_light() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    added = json.loads(result.stdout.strip().splitlines()[-1])
    assert "airflow_provider_sync.callbacks" in added
    assert not [name for name in added if any(name == h or name.startswith(f"{h}.") for h in HEAVY)]
