"""A distributed Airflow for tests: the deployment of ``harness.py`` with CeleryExecutor, a private Redis
broker (Debian ``redis-server``) and two ``airflow celery worker`` processes.

The workers run with the deployment's configuration but an ``AIRFLOW_HOME`` (task logs, DAG bundle copies)
of their own, and each reports a distinct host name to Airflow: ``[core] hostname_callable`` points at
:func:`worker_hostname`, which answers the worker's ``SYNC_TEST_HOSTNAME``. The only thing a worker shares
with the other worker and the scheduler besides the metadata database and the pipeline folder is the
staging, on an S3-protocol server.

Task processes import this module for ``hostname_callable``: it imports only the standard library and
``harness.py`` (httpx, which the Task SDK loads anyway).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.deployment.harness import BIN, Deployment

HOSTNAME_ENV = "SYNC_TEST_HOSTNAME"
HOSTNAME_CALLABLE = "tests.deployment.celery_harness.worker_hostname"
WORKER_CONCURRENCY = 2


def worker_hostname() -> str:
    """The host name a worker reports to Airflow (``[core] hostname_callable``)."""
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()


class CeleryDeployment(Deployment):
    """A :class:`Deployment` whose scheduler hands task instances to two Celery workers."""

    def __init__(
        self,
        *,
        metadata_uri: str,
        artifacts_dir: Path,
        connections: dict[str, str],
        broker_url: str,
        staging_base: str,
        extra_env: dict[str, str],
        workers: int = 2,
    ) -> None:
        super().__init__(metadata_uri=metadata_uri, artifacts_dir=artifacts_dir, connections=connections)
        result_backend = "db+" + metadata_uri.replace("postgresql://", "postgresql+psycopg2://", 1)
        self.env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
                "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
                "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
                "SYNC_STAGING_BASE": staging_base,
                **extra_env,
            }
        )
        self.staging_base = staging_base
        self.worker_names = [f"sync-worker{n}" for n in range(1, workers + 1)]
        self.worker_homes = {name: self.home / name for name in self.worker_names}

    def start(self, timeout: float = 150) -> None:
        super().start(timeout)
        self.started = False
        for name, home in self.worker_homes.items():
            home.mkdir()
            env = dict(self.env)
            env.update(
                {
                    "AIRFLOW_HOME": str(home),
                    "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(home / "dag_bundles"),
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
                    HOSTNAME_ENV: name,
                }
            )
            argv = [str(BIN / "airflow"), "celery", "worker", "--celery-hostname", f"{name}@%h"]
            argv += ["--concurrency", str(WORKER_CONCURRENCY), "--skip-serve-logs"]
            log = (self.logs_dir / f"{name}.log").open("wb")
            self._processes[name] = subprocess.Popen(
                argv, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_for_workers(timeout)
        self.started = True

    def _wait_for_workers(self, timeout: float) -> None:
        """Until every worker answers a Celery ping on the broker."""
        deadline = time.monotonic() + timeout
        broker = self.env["AIRFLOW__CELERY__BROKER_URL"]
        answered = ""
        while time.monotonic() < deadline:
            self._check_alive()
            done = subprocess.run(
                [str(BIN / "celery"), "-b", broker, "inspect", "ping", "--timeout", "2"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env=self.env,
            )
            answered = done.stdout
            if all(f"{name}@" in answered for name in self.worker_names):
                return
            time.sleep(1)
        raise RuntimeError(f"Celery workers did not answer in {timeout:.0f}s: {answered}")

    def local_staging(self) -> list[Path]:
        """Staging folders on local disk under any of the homes (there should be none)."""
        homes = [self.home, *self.worker_homes.values()]
        return [path for home in homes for path in home.glob("**/*staging*") if path.is_dir()]

    def keep_logs(self) -> Path:
        target = super().keep_logs()
        for name, home in self.worker_homes.items():
            if (home / "logs").exists():
                shutil.copytree(home / "logs", target / f"{name}-logs", dirs_exist_ok=True)
        return Path(target)
