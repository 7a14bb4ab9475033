"""A backfill through the REST API, as the UI starts one, of a cron-scheduled pipeline.

Cron schedules become ``CronDataIntervalTimetable``: each backfill run has the real interval between two
ticks, reads exactly the source rows whose cursor lies in ``[data_interval_start, data_interval_end)``, and
never moves the live watermark; the next ordinary run continues from that watermark.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from airflow_provider_sync.watermarks import variable_key
from tests.deployment.conftest import SOURCE_CONN_ID, TARGET_CONN_ID
from tests.deployment.harness import BIN, Deployment

DAG_ID = "bf_orders"
TABLE = "bf_orders"
UTC = dt.timezone.utc
DAYS = [dt.datetime(2025, 3, day, tzinfo=UTC) for day in range(1, 6)]  # 3 rows a day, 1 to 5 March
# Two days: Airflow creates a run for each logical date in [from_date, to_date], here 1 and 2 March.
BACKFILL_FROM, BACKFILL_TO = dt.datetime(2025, 3, 1, tzinfo=UTC), dt.datetime(2025, 3, 2, tzinfo=UTC)
LIVE_WATERMARK = "2025-03-04T00:00:00+00:00"

PIPELINE = f"""version: 1
dag_id: {DAG_ID}
schedule: "@daily"
start_date: 2025-01-01
source: {{conn_id: {SOURCE_CONN_ID}, table: {TABLE}}}
target: {{conn_id: {TARGET_CONN_ID}, table: {TABLE}, mode: upsert, keys: [id]}}
incremental: {{strategy: timestamp, column: updated_at, key: [id], lag: 0s}}
"""


def _seed(airflow: Deployment) -> dict[int, dt.datetime]:
    rows = {10 * day.day + hour // 6: day + dt.timedelta(hours=hour) for day in DAYS for hour in (6, 12, 18)}
    airflow.sql(
        SOURCE_CONN_ID, f"create table {TABLE} (id int primary key, note text, updated_at timestamptz)"
    )
    for row_id, cursor in rows.items():
        airflow.sql(
            SOURCE_CONN_ID, f"insert into {TABLE} values (%s, %s, %s)", (row_id, f"row {row_id}", cursor)
        )
    return rows


def _target_ids(airflow: Deployment) -> set[int]:
    return {row[0] for row in airflow.sql(TARGET_CONN_ID, f"select id from {TABLE}")}


def _watermark(airflow: Deployment) -> dict[str, Any]:
    answer = airflow.api("GET", f"/variables/{variable_key(DAG_ID, TABLE)}")
    assert answer.status_code == 200, answer.text
    return dict(json.loads(answer.json()["value"]))


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _wait_for_backfill(airflow: Deployment, backfill_id: int, timeout: float = 240) -> list[dict[str, Any]]:
    """The backfill's runs once the scheduler marked it complete."""
    deadline = time.monotonic() + timeout
    answer: Any = None
    while time.monotonic() < deadline:
        answer = airflow.api("GET", f"/backfills/{backfill_id}").json()
        if answer.get("completed_at"):
            return [run for run in airflow.dag_runs(DAG_ID) if run["run_type"] == "backfill"]
        time.sleep(2)
    raise AssertionError(f"backfill {backfill_id} not complete after {timeout:.0f}s: {answer}")


def test_backfill_reads_its_intervals_and_leaves_the_watermark_alone(deployment: Deployment) -> None:
    airflow = deployment
    rows = _seed(airflow)
    airflow.write_pipeline(DAG_ID, PIPELINE)
    airflow.wait_for_dag(DAG_ID)
    set_watermark = ["watermark", "set", DAG_ID, TABLE, "--cursor", LIVE_WATERMARK, "--key", "0", "--yes"]
    airflow.run([str(BIN / "airflow-sync"), *set_watermark])
    # Unpausing starts the latest scheduled interval, an ordinary run: it reads after the live watermark.
    assert airflow.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False}).status_code == 200
    scheduled = airflow.wait_for_scheduled_run(DAG_ID)
    assert scheduled["state"] == "success", airflow.task_states(DAG_ID, scheduled["dag_run_id"])
    after_live = {i for i, cursor in rows.items() if cursor > _parse(LIVE_WATERMARK)}
    assert _target_ids(airflow) == after_live
    live = _watermark(airflow)

    answer = airflow.api(
        "POST",
        "/backfills",
        json={"dag_id": DAG_ID, "from_date": BACKFILL_FROM.isoformat(), "to_date": BACKFILL_TO.isoformat()},
    )
    assert answer.status_code == 200, answer.text
    runs = _wait_for_backfill(airflow, answer.json()["id"])

    assert len(runs) == 2, runs
    intervals = sorted((_parse(r["data_interval_start"]), _parse(r["data_interval_end"])) for r in runs)
    for run, (start, end) in zip(runs, intervals, strict=True):
        assert run["state"] == "success", (run, airflow.task_states(DAG_ID, run["dag_run_id"]))
        assert end - start == dt.timedelta(days=1), intervals  # real intervals, not empty ones
    assert [start for start, _ in intervals] == [BACKFILL_FROM, BACKFILL_TO]
    backfilled = {i for i, cursor in rows.items() if any(start <= cursor < end for start, end in intervals)}
    assert backfilled == {11, 12, 13, 21, 22, 23}  # 3 March lies between the backfill and the watermark
    assert _target_ids(airflow) == after_live | backfilled
    assert _watermark(airflow) == live

    # New rows: one past the watermark, one late-arriving old one inside the backfilled range.
    airflow.sql(SOURCE_CONN_ID, f"insert into {TABLE} values (60, 'new', %s), (19, 'late', %s)",
                (dt.datetime(2025, 3, 6, 6, tzinfo=UTC), dt.datetime(2025, 3, 1, 9, tzinfo=UTC)))  # fmt: skip
    run_id = airflow.trigger(DAG_ID)
    assert airflow.wait_for_run(DAG_ID, run_id) == "success", airflow.task_states(DAG_ID, run_id)
    assert _target_ids(airflow) == after_live | backfilled | {60}
    moved = _watermark(airflow)
    assert _parse(moved["cursor"]["timestamp"]) == dt.datetime(2025, 3, 6, 6, tzinfo=UTC), moved
    assert moved["key"] == [60]
