"""docker-compose.yaml: every service users need, with health checks and ready-made Airflow connections."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_sync.dialects.connection import ConnectionInfo

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
DATABASE_SERVICES = ("postgres", "mysql", "clickhouse", "kafka", "mssql", "oracle")
# conn id -> (conn_type, service it points at)
EXPECTED_CONNECTIONS = {
    "SYNC_SOURCE_POSTGRES": ("postgresql", "postgres"),
    "SYNC_TARGET_POSTGRES": ("postgresql", "postgres"),
    "SYNC_MYSQL": ("mysql", "mysql"),
    "SYNC_CLICKHOUSE": ("clickhouse", "clickhouse"),
    "SYNC_KAFKA": ("kafka", "kafka"),
    "SYNC_MSSQL": ("mssql", "mssql"),
    "SYNC_ORACLE": ("oracle", "oracle"),
}
_DEFAULTED_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}")


def _interpolate(text: str) -> str:
    """Compose's own substitution for the forms this file uses: ${VAR:-default} and $$."""
    return _DEFAULTED_VARIABLE.sub(lambda match: match.group(2), text).replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


def test_every_service_is_defined_with_a_health_check(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in (*AIRFLOW_SERVICES, *DATABASE_SERVICES):
        assert name in services, name
        check = services[name].get("healthcheck", {}).get("test")
        assert check and check[0] in ("CMD", "CMD-SHELL"), f"{name} has no usable health check"


def test_images_are_pinned_to_the_supported_versions(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["mssql"]["image"].startswith("mcr.microsoft.com/mssql/server:2022")
    assert services["oracle"]["image"].startswith("gvenzl/oracle-free:")
    assert "KRaft" in COMPOSE_FILE.read_text()
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    dockerfile = (REPO_ROOT / services["airflow-scheduler"]["build"]["dockerfile"]).read_text()
    assert "FROM apache/airflow:3.3." in dockerfile
    assert "/opt/airflow-provider-sync[all]" in dockerfile


def test_airflow_services_mount_dags_and_configs_and_wait_for_init(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        service = services[name]
        volumes = service["volumes"]
        assert "./dags:/opt/airflow/dags" in volumes
        assert "./dag_configs:/opt/airflow/dag_configs" in volumes
        assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["environment"]["SYNC_DAG_CONFIGS"] == "/opt/airflow/dag_configs"
    assert services["airflow-apiserver"]["command"] == "api-server"
    assert services["airflow-dag-processor"]["command"] == "dag-processor"
    for dependency in services["mssql-init"]["depends_on"]:
        assert dependency in services


def test_connections_parse_and_point_at_bundled_services(compose: dict[str, Any]) -> None:
    environment = compose["services"]["airflow-scheduler"]["environment"]
    services = compose["services"]
    for conn_id, (conn_type, service) in EXPECTED_CONNECTIONS.items():
        raw = _interpolate(environment[f"AIRFLOW_CONN_{conn_id}"])
        if raw.lstrip().startswith("{"):
            document = json.loads(raw)
            info = ConnectionInfo(
                conn_type=document["conn_type"],
                host=document.get("host"),
                port=document.get("port"),
                extra=document.get("extra", {}),
            )
        else:
            info = ConnectionInfo.from_uri(raw)
        assert info.conn_type == conn_type, conn_id
        host = info.host or info.extra["bootstrap.servers"].split(":")[0]
        assert host == service and host in services, conn_id


def test_sample_source_and_dockerignore_ship_with_the_file(compose: dict[str, Any]) -> None:
    for mount in compose["services"]["postgres"]["volumes"]:
        local = mount.split(":")[0]
        if local.startswith("./"):
            assert (REPO_ROOT / local).is_file(), local
    ignore = (REPO_ROOT / "docker" / "airflow.Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignore and "!airflow_provider_sync/" in ignore


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def test_docker_compose_config_accepts_the_file() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("docker compose is not installed; the YAML checks above still ran")
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
