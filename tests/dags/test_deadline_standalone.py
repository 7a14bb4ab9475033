"""A Deadline Alert really fires: ``airflow standalone`` (scheduler, triggerer, DAG processor, API server)
runs a pipeline whose extract waits on a pool without slots, so the run is still busy 5 s after it was
queued; the triggerer then POSTs the deadline alert to a local webhook.

``dag.test()`` never evaluates deadlines, so this is the only way to see one fire. It takes about a minute.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dags.conftest import REPO

pytestmark = pytest.mark.slow

DAG_ID = "late_orders"
START_TIMEOUT_S = 180.0
ALERT_TIMEOUT_S = 90.0
PIPELINE = f"""\
version: 1
dag_id: {DAG_ID}
description: A sync stuck behind a pool without slots, so its deadline passes.
source: {{conn_id: demo_shop, table: orders}}
target: {{conn_id: demo_warehouse, table: orders, mode: upsert, keys: [id]}}
incremental: {{strategy: timestamp, column: updated_at, key: [id]}}
pool: no_slots
alerts:
  deadline: {{after: 5s, from: queued, notify: [{{webhook: {{conn_id: hook}}}}]}}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(what: str, check: Callable[[], Any], timeout_s: float, log: Path) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = check()
        except (httpx.HTTPError, OSError, ValueError, KeyError):
            found = None
        if found:
            return found
        time.sleep(1.0)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log.exists() else ""
    pytest.fail(
        f"{what} did not happen within {timeout_s:.0f} s; airflow standalone output ends with:\n{tail}"
    )


@pytest.fixture
def webhook() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """A local HTTP endpoint that records the JSON bodies POSTed to it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to the group lets standalone stop its components; TERM, then KILL, if it does not."""
    group = process.pid  # start_new_session: the process leads its own group
    os.killpg(group, signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)  # whatever component is left behind
    process.wait(timeout=10)


@pytest.fixture
def standalone(tmp_path: Path, webhook: tuple[int, list[dict[str, Any]]]) -> Iterator[tuple[str, Path]]:
    """``airflow standalone`` in a fresh AIRFLOW_HOME, with the project's DAG file and one pipeline."""
    home, dags, configs = tmp_path / "airflow", tmp_path / "dags", tmp_path / "dag_configs"
    for folder in (home, dags, configs):
        folder.mkdir()
    shutil.copy(REPO / "dags" / "sync_pipelines.py", dags)
    (configs / f"{DAG_ID}.yaml").write_text(PIPELINE)
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo_data.py"), "seed", str(tmp_path / "shop.db")],
        capture_output=True,
        check=True,
    )
    port, hook_port = _free_port(), webhook[0]
    base = f"http://127.0.0.1:{port}"
    # Only this test's settings: the pytest process's own AIRFLOW_*/SYNC_* variables stay out.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SYNC_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "SYNC_DAG_CONFIGS": str(configs),
            "SYNC_STAGING_BASE": f"file://{tmp_path / 'staging'}",
            "AIRFLOW_CONN_DEMO_SHOP": f"sqlite:///{tmp_path / 'shop.db'}",
            "AIRFLOW_CONN_DEMO_WAREHOUSE": f"sqlite:///{tmp_path / 'warehouse.db'}",
            "AIRFLOW_CONN_HOOK": json.dumps(
                {"conn_type": "http", "host": f"http://127.0.0.1:{hook_port}/alert"}
            ),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    log = tmp_path / "standalone.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), "standalone"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield base, log
    finally:
        _stop(process)


def _token(base: str, home: Path) -> str | None:
    passwords = home / "simple_auth_manager_passwords.json.generated"
    if not passwords.exists():
        return None
    password = json.loads(passwords.read_text())["admin"]
    response = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=5)
    return str(response.json()["access_token"]) if response.status_code in (200, 201) else None


def test_a_missed_deadline_posts_the_alert_to_the_webhook(
    standalone: tuple[str, Path], webhook: tuple[int, list[dict[str, Any]]], tmp_path: Path
) -> None:
    base, log = standalone
    received = webhook[1]
    token = _wait_for(
        "the API server login", lambda: _token(base, tmp_path / "airflow"), START_TIMEOUT_S, log
    )
    api = httpx.Client(base_url=f"{base}/api/v2", headers={"Authorization": f"Bearer {token}"}, timeout=10)

    _wait_for(
        "parsing the pipeline", lambda: api.get(f"/dags/{DAG_ID}").status_code == 200, START_TIMEOUT_S, log
    )
    created = api.post("/pools", json={"name": "no_slots", "slots": 0, "description": "never runs"})
    assert created.status_code in (200, 201), created.text
    assert api.patch(f"/dags/{DAG_ID}", json={"is_paused": False}).status_code == 200
    run = api.post(f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None})
    assert run.status_code in (200, 201), run.text
    run_id = run.json()["dag_run_id"]

    alert = _wait_for("the deadline alert", lambda: received[0] if received else None, ALERT_TIMEOUT_S, log)
    assert alert["event"] == "deadline_missed"
    assert alert["title"] == "Run missed its deadline"
    assert (alert["dag_id"], alert["run_id"]) == (DAG_ID, run_id)
    assert alert["deadline"]
    # The run really was still busy: its extract never got a pool slot.
    state = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}").json()["state"]
    assert state in ("queued", "running")
    api.close()
