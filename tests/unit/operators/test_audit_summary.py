"""The run summary in the task log: short lines, readable watermarks, rows/s over each step's own work."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow_provider_sync.audit.record import AuditRecord
from airflow_provider_sync.operators.audit import (
    WIDTH,
    cursor_value,
    step_timings,
    summary_block,
    watermark_text,
)

UTC = dt.timezone.utc
START = dt.datetime(2024, 1, 1, tzinfo=UTC)


def record(**values: Any) -> AuditRecord:
    started = AuditRecord(dag_id="shop", run_id="manual__1", step="run", started_at=START)
    return started.succeeded(ended_at=START + dt.timedelta(seconds=75), **values)


def stamp(text: str, key: int) -> dict[str, Any]:
    return {"cursor": {"timestamp": text}, "key": [key], "run_id": "r", "committed_at": None, "rows": 3}


def test_the_summary_is_a_few_short_lines_with_each_steps_own_rate() -> None:
    final = record(
        rows_extracted=1_000, rows_valid=998, rows_rejected=2, rejected_by_rule={"not_null(email)": 2},
        rows_loaded=998, rows_skipped=0, rows_masked=998, rows_encrypted=998,
        watermark_before=stamp("2024-01-01T00:00:00+00:00", 5),
        watermark_after=stamp("2024-01-02T00:00:00.123456+00:00", 1_005),
    )
    # The run took 75 s end to end (scheduling, other tasks); the extract read for 0.5 s and the load
    # wrote for 2 s: those are the rates that say how fast the sync moves rows.
    text = summary_block("orders", final, {"extract": (1_000, 0.5), "load": (998, 2.0)})
    assert text.splitlines() == [
        "sync summary orders: success, run took 1m 15s",
        "  rows      1,000 extracted, 998 valid, 2 rejected, 998 loaded, 0 skipped",
        "  rejected  not_null(email)=2",
        "  protected 998 masked, 998 encrypted",
        "  watermark 2024-01-01T00:00:00+00:00 key 5 -> 2024-01-02T00:00:00.123456+00:00 key 1005",
        "  extract   1,000 rows in 0.5s, 2,000 rows/s",
        "  load      998 rows in 2.0s, 499 rows/s",
    ]
    assert "{" not in text  # no dict or repr


def test_many_rules_and_long_watermarks_wrap_within_the_width() -> None:
    rules = {f"regex(column_with_a_long_name_{i})": i for i in range(12)}
    long_key = "customer-" + "x" * 60
    final = record(
        rows_extracted=10, rows_rejected=66, rejected_by_rule=rules, rows_loaded=0,
        watermark_before={"cursor": {"timestamp": "2024-01-01T00:00:00+00:00"}, "key": [long_key]},
        watermark_after={"cursor": {"timestamp": "2024-01-02T00:00:00+00:00"}, "key": [long_key]},
    )
    lines = summary_block("a_table_with_a_rather_long_name", final).splitlines()
    assert all(len(line) <= WIDTH for line in lines), [len(line) for line in lines]
    rejected = [line for line in lines if "regex(" in line]
    assert len(rejected) > 1 and all(line.startswith(" " * 12) for line in rejected[1:])
    assert sum(line.count("regex(") for line in rejected) == 12  # every rule shown, none cut
    assert lines[-2].startswith("  watermark from 2024-01-01T00:00:00+00:00 key customer-")
    assert lines[-1].startswith("              to 2024-01-02T00:00:00+00:00 key customer-")


def test_first_run_and_a_run_without_timings() -> None:
    lines = summary_block("orders", record(rows_extracted=0, rows_loaded=0)).splitlines()
    assert lines[-1] == "  watermark none -> none"
    assert not any(line.lstrip().startswith(("extract", "load", "rejected", "protected")) for line in lines)


def test_cursor_values_read_as_plain_json() -> None:
    assert cursor_value({"timestamp": "2024-01-02T03:04:05+00:00"}) == "2024-01-02T03:04:05+00:00"
    assert cursor_value({"date": "2024-01-02"}) == "2024-01-02"
    assert cursor_value({"decimal": "12.50"}) == "12.50"
    assert cursor_value({"bytes": "AAE="}) == "<2 bytes>"
    assert cursor_value(17) == 17 and cursor_value(None) is None
    assert watermark_text({"cursor": 41, "key": [7, "b"]}) == "41 key 7, b"
    assert watermark_text(None) == "none"


def test_step_timings_come_from_the_steps_own_seconds() -> None:
    history = [
        {"step": "extract", "rows_in": 100, "rows_out": 100, "details": {"seconds": 0.4}},
        {"step": "validate", "rows_in": 100, "rows_out": 90, "details": {}},
        {"step": "load", "rows_in": 90, "rows_out": 85, "details": {"seconds": 1.5, "rows_loaded": 85}},
    ]
    assert step_timings(history) == {"extract": (100, 0.4), "load": (85, 1.5)}
    # Manifests written before steps were timed have no seconds: no rate rather than a wrong one.
    assert step_timings([{"step": "extract", "rows_out": 5, "details": {}}]) == {}
