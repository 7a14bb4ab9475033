"""Airflow discovers the provider through its entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from airflow_provider_sync import __version__, get_provider_info


def _airflow(*args: str) -> str:
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run(
        [str(airflow), *args], capture_output=True, text=True, check=True, env=os.environ.copy()
    )
    # Log lines may precede the JSON document on stdout.
    return (
        result.stdout[result.stdout.index("\n[") + 1 :]
        if not result.stdout.startswith("[")
        else result.stdout
    )


def test_airflow_providers_list_shows_the_package() -> None:
    providers = {
        entry["package_name"]: entry for entry in json.loads(_airflow("providers", "list", "-o", "json"))
    }
    assert providers["airflow-provider-sync"]["version"] == __version__


def test_the_clickhouse_connection_type_is_registered() -> None:
    hooks = json.loads(_airflow("providers", "hooks", "-o", "json"))
    clickhouse = [hook for hook in hooks if hook.get("connection_type") == "clickhouse"]
    assert clickhouse and clickhouse[0]["class"] == "airflow_provider_sync.hooks.clickhouse.ClickHouseHook"


def test_every_listed_module_imports() -> None:
    import importlib

    info = get_provider_info()
    modules = [
        m
        for section in ("operators", "sensors", "triggers", "hooks")
        for e in info[section]
        for m in e["python-modules"]
    ]
    for module in modules:
        importlib.import_module(module)
