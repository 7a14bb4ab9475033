"""Apache Airflow 3 provider for incremental, audited, privacy-safe data synchronization."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_OPERATORS = [
    "airflow_provider_sync.operators.extract",
    "airflow_provider_sync.operators.load",
    "airflow_provider_sync.operators.watermark",
    "airflow_provider_sync.operators.steps",
    "airflow_provider_sync.operators.audit",
    "airflow_provider_sync.operators.forget",
    "airflow_provider_sync.operators.fused",
]


def get_provider_info() -> dict[str, Any]:
    """Metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "airflow-provider-sync",
        "name": "Sync",
        "description": "Incremental, audited, privacy-safe synchronization between databases, from YAML.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Sync",
                "external-doc-url": "https://pypi.org/project/airflow-provider-sync/",
                "tags": ["software"],
            }
        ],
        "operators": [{"integration-name": "Sync", "python-modules": _OPERATORS}],
        "hooks": [{"integration-name": "Sync", "python-modules": ["airflow_provider_sync.hooks.clickhouse"]}],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_sync.hooks.clickhouse.ClickHouseHook",
                "connection-type": "clickhouse",
            }
        ],
        "sensors": [
            {"integration-name": "Sync", "python-modules": ["airflow_provider_sync.sensors.new_rows"]}
        ],
        "triggers": [
            {"integration-name": "Sync", "python-modules": ["airflow_provider_sync.triggers.new_rows"]}
        ],
    }
