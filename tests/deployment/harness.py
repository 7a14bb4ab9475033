"""A real Airflow 3 deployment for tests: api-server, scheduler, dag-processor and triggerer as separate
processes over a PostgreSQL metadata database of its own, driven only the way users drive Airflow (REST API
v2 with a bearer token, the ``airflow`` CLI, a browser)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROCESSES = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer"],
}
BUNDLE_NAME = "sync-pipelines"
FINAL_RUN_STATES = {"success", "failed"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_parent_env() -> dict[str, str]:
    """The test process's environment without its own Airflow settings (a SQLite test home)."""
    dropped = ("AIRFLOW_", "SYNC_")
    return {key: value for key, value in os.environ.items() if not key.startswith(dropped)}


class Deployment:
    """One running Airflow. Attributes and methods are what tests use; nothing else is needed."""

    def __init__(self, *, metadata_uri: str, artifacts_dir: Path, connections: dict[str, str]) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="sync-deploy-"))
        self.configs_dir = self.home / "dag_configs"
        self.configs_dir.mkdir()
        self.artifacts_dir = artifacts_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.username = "admin"
        self.password = ""
        self._token: str | None = None
        self.started = False
        self.connections = dict(connections)
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs_dir = self.home / "process-logs"
        self.logs_dir.mkdir()
        self.env = self._environment(metadata_uri, connections)

    # -- set-up ------------------------------------------------------------------------------------------
    def _environment(self, metadata_uri: str, connections: dict[str, str]) -> dict[str, str]:
        from cryptography.fernet import Fernet

        bundles = [
            {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {}},
            {"name": BUNDLE_NAME, "classpath": "airflow_provider_sync.factory.bundle.SyncPipelinesBundle",
             "kwargs": {"configs_path": str(self.configs_dir), "refresh_interval": 5}},
        ]  # fmt: skip
        env = _clean_parent_env()
        env.update(
            {
                "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
                "PYTHONPATH": str(REPO),
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_uri,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "2",
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(self.home / "dag_bundles"),
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "SYNC_DAG_CONFIGS": str(self.configs_dir),
                "SYNC_STAGING_BASE": f"file://{self.home / 'staging'}",
            }
        )
        env.update({f"AIRFLOW_CONN_{conn_id.upper()}": uri for conn_id, uri in connections.items()})
        return env

    def start(self, timeout: float = 150) -> None:
        self.cli("db", "migrate", timeout=300)
        for name, args in PROCESSES.items():
            log = (self.logs_dir / f"{name}.log").open("wb")
            self._processes[name] = subprocess.Popen(
                [str(BIN / "airflow"), *args],
                env=self.env,
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stopped as a whole, workers included
            )
        self._wait_until_healthy(timeout)
        self.started = True

    def _wait_until_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                answer = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
                health = answer.json()
                states = {
                    part: (health.get(part) or {}).get("status") for part in ("metadatabase", "scheduler")
                }
                if answer.status_code == 200 and set(states.values()) == {"healthy"}:
                    self.password = self._generated_password()
                    self.token()
                    return
                last = f"{answer.status_code} {health}"
            except (httpx.HTTPError, ValueError) as error:
                last = f"{type(error).__name__}: {error}"
            time.sleep(1)
        raise RuntimeError(f"Airflow did not become healthy in {timeout:.0f}s: {last}")

    def _check_alive(self) -> None:
        for name, process in self._processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"airflow {name} exited with {process.returncode}; see {self.logs_dir}")

    def _generated_password(self) -> str:
        path = self.home / "simple_auth_manager_passwords.json.generated"
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        return str(json.loads(path.read_text())[self.username])

    # -- tear-down ---------------------------------------------------------------------------------------
    def stop(self, grace: float = 20) -> None:
        """SIGINT every process group, then SIGTERM, then SIGKILL, each bounded in time."""
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            running = [p for p in self._processes.values() if p.poll() is None]
            if not running:
                break
            for process in running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(p.poll() is None for p in running):
                time.sleep(0.2)
        for process in self._processes.values():
            # Workers left behind by a killed leader share its group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    def keep_logs(self) -> Path:
        """Copy the processes' output and Airflow's own logs to the artifacts folder; return it."""
        target = self.artifacts_dir / f"airflow-{time.strftime('%Y%m%d-%H%M%S')}"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.logs_dir, target / "process-logs", dirs_exist_ok=True)
        if (self.home / "logs").exists():
            shutil.copytree(self.home / "logs", target / "logs", dirs_exist_ok=True)
        if self.configs_dir.exists():
            shutil.copytree(self.configs_dir, target / "dag_configs", dirs_exist_ok=True)
        return target

    def remove_home(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    # -- how users drive it ------------------------------------------------------------------------------
    def token(self) -> str:
        if self._token is None:
            answer = httpx.post(
                f"{self.base_url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=30,
            )
            answer.raise_for_status()
            self._token = str(answer.json()["access_token"])
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call ``/api/v2<path>`` as the admin user; a token that expired is renewed once."""
        kwargs.setdefault("timeout", 30)
        for _ in range(2):
            headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
            answer = httpx.request(method, f"{self.base_url}/api/v2{path}", headers=headers, **kwargs)
            if answer.status_code != 401:
                return answer
            self._token = None
        return answer

    def run(
        self,
        argv: list[str],
        check: bool = True,
        timeout: float = 120,
        *,
        cwd: Path | None = None,
        without: Sequence[str] = (),
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run any command (``airflow-sync ...``) with the deployment's environment (less the variables
        ``without``), in its home or ``cwd``."""
        env = {key: value for key, value in self.env.items() if key not in without}
        done = subprocess.run(
            argv,
            env=env,
            cwd=cwd or self.home,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            output = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            raise AssertionError(f"{' '.join(argv)} exited with {done.returncode}\n{output}")
        return done

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run([str(BIN / "airflow"), *args], check=check, timeout=timeout)

    def add_connection(self, conn_id: str, uri: str) -> None:
        """Store a connection in the metadata database, as ``airflow connections add`` does for users."""
        self.cli("connections", "add", conn_id, "--conn-uri", uri)

    def sql(self, conn_id: str, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on a pipeline database (PostgreSQL) and return its rows, if any."""
        import psycopg

        with psycopg.connect(self.connections[conn_id], autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(statement, list(params))  # type: ignore[arg-type]
            return list(cursor.fetchall()) if cursor.description else []

    def write_pipeline(self, name: str, text: str) -> Path:
        path = self.configs_dir / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.part")
        temporary.write_text(text)
        temporary.replace(path)  # the processor never reads half a file
        return path

    def wait_for_dag(self, dag_id: str, timeout: float = 90) -> dict[str, Any]:
        """Wait until the DAG is parsed, active and free of import errors; return its REST representation."""
        deadline = time.monotonic() + timeout
        seen: Any = None
        while time.monotonic() < deadline:
            self._check_alive()
            answer = self.api("GET", f"/dags/{dag_id}")
            if answer.status_code == 200:
                seen = answer.json()
                if not seen.get("is_stale") and not seen.get("has_import_errors"):
                    return dict(seen)
            else:
                seen = f"{answer.status_code} {answer.text[:300]}"
            time.sleep(1)
        raise AssertionError(f"DAG {dag_id} not active after {timeout:.0f}s: {seen}")

    def import_errors(self) -> dict[str, str]:
        """Import errors by file name, as ``airflow dags list-import-errors -o json`` prints them (it exits
        with 1 when there are some)."""
        done = self.cli("dags", "list-import-errors", "-o", "json", check=False)
        rows = [line for line in done.stdout.splitlines() if line.startswith("[")]
        if done.returncode not in (0, 1) or (done.returncode == 1 and not rows):
            raise AssertionError(f"list-import-errors failed ({done.returncode}): {done.stdout}{done.stderr}")
        return {str(row["filepath"]): str(row["error"]) for row in json.loads(rows[-1])} if rows else {}

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        answer = self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        assert answer.status_code == 200, answer.text
        answer = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["dag_run_id"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        state = "unknown"
        while time.monotonic() < deadline:
            self._check_alive()
            answer = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if answer.status_code == 200:
                state = str(answer.json()["state"])
                if state in FINAL_RUN_STATES:
                    return state
            time.sleep(1)
        raise AssertionError(f"run {run_id} of {dag_id} still {state} after {timeout:.0f}s")

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        answer = self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "run_after"})
        answer.raise_for_status()
        return list(answer.json()["dag_runs"])

    def wait_for_scheduled_run(self, dag_id: str, timeout: float = 180) -> dict[str, Any]:
        """Wait for the scheduler's own run of ``dag_id`` (run_type ``scheduled``) to finish; return it."""
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            self._check_alive()
            seen = [run for run in self.dag_runs(dag_id) if run["run_type"] == "scheduled"]
            finished = [run for run in seen if run["state"] in FINAL_RUN_STATES]
            if finished:
                return finished[0]
            time.sleep(1)
        raise AssertionError(f"no scheduled run of {dag_id} finished in {timeout:.0f}s: {seen}")

    def rest_import_errors(self) -> dict[str, str]:
        """Import errors as the UI shows them (``/api/v2/importErrors``): file name → message."""
        answer = self.api("GET", "/importErrors", params={"limit": 100})
        answer.raise_for_status()
        return {str(row["filename"]): str(row["stack_trace"]) for row in answer.json()["import_errors"]}

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        answer = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
        answer.raise_for_status()
        return {row["task_id"]: str(row["state"]) for row in answer.json()["task_instances"]}
