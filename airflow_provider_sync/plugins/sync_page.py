"""The plugin class, registered through the ``airflow.plugins`` entry point.

Airflow imports plugins in every process (scheduler, workers, DAG processor), so this module imports only
the plugin base class. The FastAPI app is built the first time the API server asks for ``fastapi_apps``.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/sync"


class SyncPagePlugin(AirflowPlugin):
    """The Sync page: a FastAPI app under ``/sync`` and a "Sync" entry in the UI's navigation."""

    name = "airflow_provider_sync"
    # Shown inside the Airflow UI (an iframe at /plugin/sync); href is relative to the UI's base URL.
    external_views = [
        {
            "name": "Sync",
            "href": "sync/",
            "url_route": "sync",
            "destination": "nav",
            "category": "browse",
        }
    ]

    @cached_property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from airflow_provider_sync.plugins.app import create_app

        return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Sync page"}]
