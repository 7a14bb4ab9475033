"""The Sync page's HTML: every value from configs, databases or users is escaped, links are quoted, counts and
ages read well. Also that the plugin module Airflow imports in every process stays light."""

from __future__ import annotations

import ast
import datetime as dt
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from airflow_provider_sync.factory.cli_status import TableStatus
from airflow_provider_sync.plugins import html
from airflow_provider_sync.plugins.changes import Change
from airflow_provider_sync.plugins.state import PageState, TableView

HOSTILE = "<script>alert('x')</script>"


def _state(**status: object) -> PageState:
    fields: dict[str, object] = {"dag_id": "orders_sync", "table": "orders"} | status
    view = TableView(
        TableStatus(**fields),  # type: ignore[arg-type]
        "timestamp",
        "updated_at",
        run_ended=dt.datetime(2026, 3, 1, 12, 0, 5, tzinfo=dt.timezone.utc),
        rows_extracted=12_345,
        rows_rejected=2,
        log_task_id="orders.load",
        quarantined={"email": 2, HOSTILE: 1},
        rows_waiting=True,
    )
    pipeline = SimpleNamespace(dag_id=fields["dag_id"])
    return PageState(Path("/configs"), [(pipeline, [view])])  # type: ignore[list-item]


def test_overview_escapes_every_value() -> None:
    state = _state(
        dag_id="d'<b>", table=HOSTILE, watermark=HOSTILE, last_run_id="manual__<i>", result="success",
        rows_loaded=12_340, warning=HOSTILE, error="boom <img src=x onerror=1>",
    )  # fmt: skip
    text = html.overview(state, "", "/sync", "<admin>")
    assert "<script>" not in text and "<img" not in text and "d'<b>" not in text and "<i>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "signed in as &lt;admin&gt;" in text
    # Path parts are percent-encoded, then the whole URL is attribute-escaped.
    assert "/dags/d%27%3Cb%3E/runs/manual__%3Ci%3E" in text
    assert "/sync/quarantine/d%27%3Cb%3E/%3Cscript%3Ealert%28%27x%27%29%3C%2Fscript%3E" in text


def test_overview_shows_counts_result_and_links() -> None:
    state = _state(
        watermark="2026-03-01T11:00:00+00:00 key 7", lag_s=90061.0, last_run_id="manual__1",
        committed_at="2026-03-01T12:00:04.123456+00:00",
        result="success", rows_loaded=12_340,
    )  # fmt: skip
    text = html.overview(state, "/airflow", "/airflow/sync", "admin")
    assert "12,345" in text and "12,340" in text and ">2<" in text
    assert "<span class='badge success'>success</span> 2026-03-01 12:00:05 UTC" in text
    assert "1 d 1 h" in text and "rows waiting" in text
    assert "href='/airflow/dags/orders_sync/runs/manual__1/tasks/orders.load'" in text
    assert "href='/airflow/sync/watermark/orders_sync/orders'" in text
    assert "email: 2" in text and "committed 2026-03-01 12:00:04 UTC" in text
    assert html._age(59.6) == "0:01:00" and html._age(-3600) == "1:00:00 ahead"


def test_table_without_runs_says_so() -> None:
    text = html.overview(_state(), "", "/sync", "admin")
    assert "no run recorded" in text and "not set" in text


def test_quarantine_rows_are_escaped_as_stored() -> None:
    rows = [
        {
            "quarantined_at": dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc),
            "run_id": "manual__1",
            "step": "validate",
            "rule": "email",
            "reason": HOSTILE,
            "row_json": {"email": "j***@example.com", "note": HOSTILE},
        }
    ]
    text = html.quarantine("orders_sync", "orders", rows, "/sync", "")
    assert "<script>" not in text
    assert "j***@example.com" in text and "&lt;script&gt;" in text
    assert "No quarantined rows" in html.quarantine("orders_sync", "orders", [], "/sync", "")


def test_confirmation_carries_the_token_escaped() -> None:
    change = Change("orders_sync", "orders", "reset", None)
    text = html.confirm(change, "now <x>", "not set", "tok'en\"<", "/sync/watermark/orders_sync/orders")
    assert "value='tok&#x27;en&quot;&lt;'" in text and "now &lt;x&gt;" in text
    assert "name='confirm' value='yes'" in text


def test_the_plugin_module_imports_nothing_heavy() -> None:
    """Beyond Airflow's own plugin base class, loading the plugin imports only its own two modules: the app,
    the page's data and the pipeline configuration load when the API server first asks for the app."""
    code = (
        "import sys, airflow.plugins_manager; before = set(sys.modules); "
        "import airflow_provider_sync.plugins.sync_page; "
        "print('NEW', sorted(set(sys.modules) - before))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    [line] = [line for line in done.stdout.splitlines() if line.startswith("NEW ")]
    new = set(ast.literal_eval(line.removeprefix("NEW ")))
    assert "airflow_provider_sync.plugins.sync_page" in new
    assert new <= {
        "airflow_provider_sync",
        "airflow_provider_sync.plugins",
        "airflow_provider_sync.plugins.sync_page",
    }
