"""Print what one demo run moved: task results, the watermark Variable and the audit rows.

    python scripts/demo_report.py DEMO_DIR RUN_NUMBER
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

DAG_ID, TABLE = "demo_orders", "orders"


def latest_run_results() -> tuple[str, dict[str, object]]:
    from airflow.models import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalars(
            select(DagRun).where(DagRun.dag_id == DAG_ID).order_by(DagRun.id.desc()).limit(1)
        ).one()
        rows = session.scalars(
            select(XComModel).where(XComModel.dag_id == DAG_ID, XComModel.run_id == run.run_id)
        ).all()
        values = {row.task_id: row.value for row in rows}
        return f"{run.run_id} ({run.state})", values


def decoded(value: object) -> dict:
    return json.loads(value) if isinstance(value, str) else dict(value or {})  # type: ignore[arg-type]


def cursor_text(cursor: object) -> object:
    """Watermark cursors are stored typed ({"timestamp": "..."}); show just the value."""
    return next(iter(cursor.values())) if isinstance(cursor, dict) and len(cursor) == 1 else cursor


def main(demo_dir: str, run_number: str) -> None:
    from airflow.models import Variable

    run, results = latest_run_results()
    extract = decoded(results.get(f"{TABLE}.extract"))
    load = decoded(results.get(f"{TABLE}.load"))
    print(f"run {run_number}: {run}")
    start = (extract.get("range") or {}).get("start")
    print(f"  extracted {extract.get('rows')} rows after {cursor_text(start) or 'the beginning'}")
    details = next((h.get("details", {}) for h in load.get("history", []) if h.get("step") == "load"), {})
    print(f"  loaded: {details.get('inserted')} inserted, {details.get('updated')} updated, "
          f"{details.get('unchanged')} unchanged")
    watermark = json.loads(Variable.get(f"sync:{DAG_ID}:{TABLE}", default_var="{}"))
    print(f"  watermark sync:{DAG_ID}:{TABLE}: cursor {cursor_text(watermark.get('cursor'))}, "
          f"key {watermark.get('key')}, "
          f"{watermark.get('rows')} rows in the last run")
    warehouse = Path(demo_dir) / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        (count,) = db.execute('SELECT COUNT(*) FROM "orders"').fetchone()
        print(f"  warehouse now holds {count} orders")
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "sync_audit" in tables:
            cursor = db.execute(
                "SELECT step, status, rows_extracted, rows_loaded, watermark_after FROM sync_audit "
                "WHERE run_id = (SELECT run_id FROM sync_audit ORDER BY started_at DESC LIMIT 1) "
                "ORDER BY started_at"
            )
            print("  audit rows:")
            print(f"    {'step':<18}{'status':<9}{'extracted':>10}{'loaded':>8}  watermark after")
            for step, status, extracted, loaded, after in cursor:
                mark = json.loads(after) if after else {}
                where = f"{cursor_text(mark.get('cursor'))} key {mark.get('key')}" if mark else ""
                print(f"    {step:<18}{status:<9}{extracted if extracted is not None else '':>10}"
                      f"{loaded if loaded is not None else '':>8}  {where}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
