"""The quarantine table as other steps (validate, schema_map) use it: created through each dialect, rows
written with their rule and reason, ``row_json`` JSON-safe for every Arrow type a row can carry."""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.pipeline.quarantine import QuarantineWriter, json_safe, quarantine_schema

pytestmark = pytest.mark.integration

WHEN = dt.datetime(2025, 6, 7, 8, 9, 10, 123456, tzinfo=dt.timezone.utc)
ROWS = pa.RecordBatch.from_pydict(
    {
        "id": [1, 2],
        "email": ["not-an-email", None],
        "amount": pa.array([Decimal("-12.50"), Decimal("3.00")], pa.decimal128(10, 2)),
        "seen_at": pa.array([WHEN, None], pa.timestamp("us", tz="UTC")),
        "born": pa.array([dt.date(1990, 1, 2), None], pa.date32()),
        "token": pa.array([b"\x00\xffkey", None], pa.binary()),
        "tags": pa.array([["a", "b"], []], pa.list_(pa.string())),
        "score": [float("nan"), 1.5],
    }
)


@pytest.mark.parametrize("kind", ["postgres", "mysql", "sqlite"])
def test_validate_rejects_round_trip_through_the_quarantine_table(make_db: Any, kind: str) -> None:
    target = make_db(kind)
    table = target.table("sync_quarantine")
    with QuarantineWriter.open(target.info, table) as writer:
        assert not writer.ensure_table(), "open() created it already"
        written = writer.write(
            "crm_sync",
            "manual__1",
            "customers",
            "validate",
            ROWS,
            ["email.format", "email.not_null"],
            ["not a valid e-mail address", "value is missing"],
        )
        stored = writer.read("manual__1")
    assert written == 2
    assert stored.column_names == quarantine_schema().names
    rows = stored.to_pylist()
    assert [(r["dag_id"], r["table_name"], r["step"], r["rule"], r["reason"]) for r in rows] == [
        ("crm_sync", "customers", "validate", "email.format", "not a valid e-mail address"),
        ("crm_sync", "customers", "validate", "email.not_null", "value is missing"),
    ]
    assert json.loads(rows[0]["row_json"]) == {
        "id": 1,
        "email": "not-an-email",
        "amount": "-12.50",
        "seen_at": WHEN.isoformat(),
        "born": "1990-01-02",
        "token": base64.b64encode(b"\x00\xffkey").decode(),
        "tags": ["a", "b"],
        "score": "nan",
    }
    assert json.loads(rows[1]["row_json"])["email"] is None
    assert target.count("sync_quarantine") == 2


def test_every_row_needs_a_rule_and_a_reason(make_db: Any) -> None:
    target = make_db("sqlite")
    with QuarantineWriter.open(target.info, target.table("q")) as writer:
        with pytest.raises(TerminalError, match="2 quarantined rows need 2 rules and 2 reasons, got 1 and 2"):
            writer.write("d", "r", "t", "validate", ROWS, ["only one"], ["a", "b"])
        assert writer.write("d", "r", "t", "validate", ROWS.slice(0, 0), [], []) == 0


def test_json_safe_keeps_plain_values_and_marks_the_rest() -> None:
    assert json_safe(
        {"n": 1, "ok": True, "x": None, "inf": float("inf"), "span": dt.timedelta(minutes=1)}
    ) == {
        "n": 1,
        "ok": True,
        "x": None,
        "inf": "inf",
        "span": 60.0,
    }
