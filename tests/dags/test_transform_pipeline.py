"""validate → mask → encrypt → schema_map → load, end to end under dag.test(): PostgreSQL source into a
PostgreSQL or MariaDB target. The target must equal the expected transform of the source (decrypted to
check), rejected rows must sit in the quarantine table with their reasons and with every protected field
masked or encrypted, and nothing the run logged may contain a protected value in clear."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.config.steps.mask import MaskStep
from airflow_provider_sync.core.encrypt import decrypt_value
from airflow_provider_sync.core.mask import Masker
from tests.dags.conftest import failing_on_call
from tests.integration.step_support import MASK_SECRET, Namespace, logged_text, namespace, set_secrets

pytestmark = pytest.mark.integration

ROWS = 60
BAD_EMAIL = {7, 23}          # quarantined by validate
DROPPED_COUNTRY = {11}       # dropped by validate
BAD_DATES = {31}             # quarantined by the row expression
UNKNOWN_PLAN = {44}          # quarantined by schema_map's lookup
T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.timezone.utc)
MASK_COLUMNS = {"email": "email", "phone": {"strategy": "phone", "keep_last": 2}, "full_name": "pseudonym"}


def source_rows() -> list[dict[str, Any]]:
    rows = []
    for i in range(1, ROWS + 1):
        rows.append({
            "id": i,
            "email": f"person{i}@nowhere.test" if i not in BAD_EMAIL else f"broken-address-{i}",
            "phone": f"+44 7700 9{i:05d}",
            "full_name": f"Zelda Quux{i:03d}",
            "national_id": f"NIQ{i:06d}Z",
            "notes": f"confidential remark {i:04d}",
            "country": "XX" if i in DROPPED_COUNTRY else ("GB" if i % 2 else "FR"),
            "plan_id": 99 if i in UNKNOWN_PLAN else 1 + i % 3,
            "amount": Decimal(i) + Decimal("0.25"),
            "signup_at": T0 + dt.timedelta(days=2) if i in BAD_DATES else T0 - dt.timedelta(days=i),
            "updated_at": T0 + dt.timedelta(minutes=i),
        })
    return rows


def protected_values(rows: list[dict[str, Any]]) -> list[str]:
    return [str(row[c]) for row in rows for c in ("email", "phone", "full_name", "national_id", "notes")]


@pytest.fixture
def source(pg_uri: str) -> Iterator[Namespace]:
    yield from namespace("postgres", pg_uri)


def create_source(space: Namespace) -> list[dict[str, Any]]:
    space.run(
        f"CREATE TABLE {space.name('customers')} (id int PRIMARY KEY, email text, phone text, "
        "full_name text, national_id text, notes text, country text, plan_id int, amount numeric(10,2), "
        "signup_at timestamptz, updated_at timestamptz)"
    )
    rows = source_rows()
    columns = list(rows[0])
    marks = ", ".join(["%s"] * len(columns))
    space.many(
        f"INSERT INTO {space.name('customers')} ({', '.join(columns)}) VALUES ({marks})",
        [[row[c] for c in columns] for row in rows],
    )
    space.run(f"CREATE TABLE {space.name('plans')} (plan_id int PRIMARY KEY, name text)")
    space.many(f"INSERT INTO {space.name('plans')} VALUES (%s, %s)", [(1, "basic"), (2, "plus"), (3, "pro")])
    return rows


def pipeline_yaml(
    dag_id: str, source: Namespace, target: Namespace, execution: str = "per_step",
    staging: Path | None = None,
) -> str:
    kept = f"staging: {{base: 'file://{staging}', keep_committed: true}}" if staging else ""
    return f"""
version: 1
dag_id: {dag_id}
default_args: {{retries: 0}}
execution: {execution}
{kept}
source: {{conn_id: steps_src, table: {source.name('customers')}}}
target: {{conn_id: steps_dst, table: {target.name('customers_out')}, mode: upsert, keys: [id],
          create_if_missing: true}}
incremental: {{strategy: timestamp, column: updated_at, key: [id], batch_size: 25}}
steps:
  - validate:
      on_invalid: quarantine
      rules:
        email: {{required: true, email: true}}
        country: {{in: [GB, FR], on_invalid: drop}}
      expressions:
        - {{name: signup_first, expression: "signup_at <= updated_at"}}
  - mask:
      secret_conn_id: steps_secret
      columns: {{email: email, phone: {{strategy: phone, keep_last: 2}}, full_name: pseudonym}}
  - encrypt:
      keyring_conn_id: steps_keyring
      columns: {{national_id: deterministic, notes: randomized}}
  - schema_map:
      rename: {{full_name: person}}
      lookup:
        - {{conn_id: steps_src, table: {source.name('plans')}, key: plan_id, columns: {{name: plan_name}},
           on_missing: quarantine}}
      derive: {{amount_x2: "amount * 2"}}
"""


@pytest.mark.parametrize(
    ("target_kind", "execution"),
    [("postgres", "per_step"), ("mysql", "per_step"), ("postgres", "fused"), ("mysql", "fused")],
)
def test_protected_pipeline_end_to_end(
    target_kind: str, execution: str, source: Namespace, request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    run_pipeline: Callable[..., Any], configs_dir: Path, airflow_db: Path,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    uri = request.getfixturevalue("pg_uri" if target_kind == "postgres" else "mysql_uri")
    targets = namespace(target_kind, uri)
    target = next(targets)
    try:
        rows = create_source(source)
        dag_id = f"steps_e2e_{target_kind}_{execution}_{source.schema}"
        target.dag_ids.append(dag_id)
        monkeypatch.setenv("AIRFLOW_CONN_STEPS_SRC", source.uri)
        monkeypatch.setenv("AIRFLOW_CONN_STEPS_DST", target.uri)
        keyring = set_secrets(monkeypatch, "steps_keyring", "steps_secret")
        staging = tmp_path / "staging"
        (configs_dir / "steps_e2e.yaml").write_text(pipeline_yaml(dag_id, source, target, execution, staging))

        caplog.set_level("DEBUG")
        run = run_pipeline(dag_id)
        assert run.state == "success"
        assert_one_task_when_fused(airflow_db, dag_id, run.run_id, execution)
        check_target(target, rows, keyring)
        check_quarantine(target, dag_id, rows, keyring)
        check_audit(target, dag_id, run.run_id)
        logs = logged_text(airflow_db, caplog, capsys.readouterr())
        assert "validate: 60 rows in" in logs, "the step logs were captured"
        assert_streamed_when_fused(logs, staging, dag_id, run.run_id, execution)
        stored = logs + xcom_text(dag_id, run.run_id) + str(target.fetch(
            "SELECT * FROM sync_audit WHERE dag_id = %s", [dag_id]))
        leaked = [value for value in protected_values(rows) if value in stored]
        assert not leaked, f"{len(leaked)} protected values appear in clear in logs, XCom or the audit table"

        again = run_pipeline(dag_id)  # nothing new: every step runs on an empty stage
        assert again.state == "success"
        assert target.fetch(f"SELECT COUNT(*) AS n FROM {target.name('customers_out')}") == [{"n": 55}]
        assert len(target.quarantine(dag_id)) == 4
    finally:
        for _ in targets:
            pass


def assert_one_task_when_fused(airflow_db: Path, dag_id: str, run_id: str, execution: str) -> None:
    """A fused table is one task (the steps ran inside it); a per-step table a task per stage."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        states = dict(session.execute(
            select(TaskInstance.task_id, TaskInstance.state).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all())
    stages = {task_id.rpartition(".")[2]: state for task_id, state in states.items()}
    if execution == "fused":
        assert stages == {"sync": "success"}, states
    else:
        assert "encrypt" in stages and "sync" not in stages, states


STEP_FOLDERS = ("validate", "mask", "encrypt", "schema_map")


def staged_files(staging: Path, dag_id: str, run_id: str, step: str) -> list[Path]:
    from airflow_provider_sync.staging.files import safe_component

    folders = (staging / dag_id / safe_component(run_id)).glob(f"*/{step}")
    return [path for folder in folders for path in folder.rglob("*") if path.is_file()]


def assert_streamed_when_fused(logs: str, staging: Path, dag_id: str, run_id: str, execution: str) -> None:
    """A fused table streams its steps: one pass, no staged file between steps (the extract keeps its
    files); per step, every step stages its own."""
    assert staged_files(staging, dag_id, run_id, "extract")
    streamed = "Stages extract -> validate -> mask -> encrypt -> schema_map -> load, streamed" in logs
    assert streamed is (execution == "fused")
    for step in STEP_FOLDERS:
        assert bool(staged_files(staging, dag_id, run_id, step)) is (execution != "fused"), step


def xcom_text(dag_id: str, run_id: str) -> str:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        values = session.scalars(
            select(XComModel.value).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id)
        ).all()
    assert values, "the steps returned their manifests"
    return "\n".join(str(value) for value in values)


def check_audit(target: Namespace, dag_id: str, run_id: str) -> None:
    counters = "rows_extracted, rows_valid, rows_rejected, rows_masked, rows_encrypted, rows_loaded"
    (row,) = target.fetch(
        f"SELECT {counters}, key_ids, rejected_by_rule FROM sync_audit "
        "WHERE dag_id = %s AND run_id = %s AND step = 'run'", [dag_id, run_id],
    )
    decoded = {k: json.loads(v) if isinstance(v, str) else v for k, v in row.items()}
    rules = {"email.email": 2, "country.in": 1, "expression.signup_first": 1, "lookup.plan_id": 1}
    assert decoded == {
        "rows_extracted": 60, "rows_valid": 56, "rows_rejected": 5, "rows_masked": 56, "rows_encrypted": 112,
        "rows_loaded": 55, "key_ids": ["k1"], "rejected_by_rule": rules,
    }


def check_target(target: Namespace, rows: list[dict[str, Any]], keyring: Any) -> None:
    table = target.name("customers_out")
    loaded = {row["id"]: row for row in target.fetch(f"SELECT * FROM {table} ORDER BY id")}
    removed = BAD_EMAIL | DROPPED_COUNTRY | BAD_DATES | UNKNOWN_PLAN
    assert sorted(loaded) == [row["id"] for row in rows if row["id"] not in removed]
    masker = Masker(MaskStep.model_validate({"columns": MASK_COLUMNS, "secret_conn_id": "x"}),
                    MASK_SECRET.encode())
    expected_batch = masker.mask(pa.RecordBatch.from_pylist(
        [{c: row[c] for c in MASK_COLUMNS} for row in rows if row["id"] not in removed]))
    expected = {row_id: masked for row_id, masked in zip(
        [row["id"] for row in rows if row["id"] not in removed], expected_batch.to_pylist(), strict=True)}
    plans = {1: "basic", 2: "plus", 3: "pro"}
    for row in rows:
        if row["id"] in removed:
            continue
        got = loaded[row["id"]]
        assert got["email"] == expected[row["id"]]["email"]
        assert got["email"].endswith("@nowhere.test") and got["email"] != row["email"]
        assert got["phone"] == expected[row["id"]]["phone"] and got["phone"].endswith(row["phone"][-2:])
        assert got["person"] == expected[row["id"]]["full_name"] and got["person"].startswith("tok_")
        assert got["national_id"].startswith("enc:v1:siv:k1:")
        assert got["notes"].startswith("enc:v1:gcm:k1:")
        assert decrypt_value(got["national_id"], keyring, f"{target.name('customers_out')}.national_id") \
            == row["national_id"]
        assert decrypt_value(got["notes"], keyring, f"{target.name('customers_out')}.notes") == row["notes"]
        assert got["plan_name"] == plans[row["plan_id"]]
        assert Decimal(str(got["amount"])) == row["amount"]
        assert float(got["amount_x2"]) == pytest.approx(float(row["amount"]) * 2)


def check_quarantine(target: Namespace, dag_id: str, rows: list[dict[str, Any]], keyring: Any) -> None:
    by_id = {row["id"]: row for row in rows}
    quarantined = target.quarantine(dag_id)
    found = {(q["step"], q["row_json"]["id"]): q for q in quarantined}
    assert sorted(found) == sorted(
        [("validate", i) for i in BAD_EMAIL | BAD_DATES] + [("schema_map", i) for i in UNKNOWN_PLAN]
    )
    for (_, row_id), entry in found.items():
        original, saved = by_id[row_id], entry["row_json"]
        if row_id in BAD_EMAIL:
            assert entry["rule"] == "email.email"
            assert entry["reason"] == "email: is not a valid e-mail address"
        elif row_id in BAD_DATES:
            assert entry["rule"] == "expression.signup_first" and entry["reason"] == "fails signup_first"
        else:
            assert entry["rule"] == "lookup.plan_id" and "no match" in entry["reason"]
        for column in ("email", "phone", "full_name", "national_id", "notes"):
            assert saved[column] != original[column], f"{column} stored in clear in the quarantine table"
        assert saved["national_id"].startswith("enc:v1:siv:k1:")
        context = f"{target.name('customers_out')}.notes"
        assert decrypt_value(saved["notes"], keyring, context) == original["notes"]


# ---------------------------------------------------------------- streamed steps against the per-step run
AUDITED = (
    "step, status, rows_extracted, rows_valid, rows_rejected, rows_masked, rows_encrypted, rows_loaded, "
    "rows_skipped, rejected_by_rule, key_ids"
)


def decrypted(target: Namespace, rows: list[dict[str, Any]], keyring: Any) -> list[dict[str, Any]]:
    """``rows`` with their encrypted columns decrypted (randomized ciphertexts differ run to run, and the
    context names the target table)."""
    table = target.name("customers_out")
    out = []
    for row in rows:
        row = dict(row)
        for column in ("national_id", "notes"):
            assert str(row[column]).startswith("enc:v1:"), f"{column} stored in clear"
            row[column] = decrypt_value(row[column], keyring, f"{table}.{column}")
        out.append(row)
    return out


def outcome(target: Namespace, dag_id: str, run_id: str, keyring: Any) -> dict[str, Any]:
    """What a run left: target rows, quarantined rows (both decrypted) and the audit rows' counts."""
    table = target.name("customers_out")
    quarantined = [
        {"step": q["step"], "rule": q["rule"], "reason": q["reason"], **q["row_json"]}
        for q in target.quarantine(dag_id)
    ]
    audit = target.fetch(
        f"SELECT {AUDITED} FROM sync_audit WHERE dag_id = %s AND run_id = %s ORDER BY step", [dag_id, run_id]
    )
    return {
        "target": decrypted(target, target.fetch(f"SELECT * FROM {table} ORDER BY id"), keyring),
        "quarantine": sorted(decrypted(target, quarantined, keyring), key=lambda q: (q["step"], q["id"])),
        "audit": audit,
    }


def test_streamed_steps_give_what_the_per_step_run_gives(
    source: Namespace, pg_uri: str, monkeypatch: pytest.MonkeyPatch,
    run_pipeline: Callable[..., Any], configs_dir: Path, airflow_db: Path,
) -> None:
    """The same table per step into one schema and fused (streamed) into another: same rows, same
    quarantined rows, same audit counts per step."""
    rows = create_source(source)
    monkeypatch.setenv("AIRFLOW_CONN_STEPS_SRC", source.uri)
    keyring = set_secrets(monkeypatch, "steps_keyring", "steps_secret")
    results = []
    for execution in ("per_step", "fused"):
        spaces = namespace("postgres", pg_uri)
        target = next(spaces)
        try:
            dag_id = f"steps_same_{execution}_{source.schema}"
            monkeypatch.setenv("AIRFLOW_CONN_STEPS_DST", target.uri)
            (configs_dir / "steps_same.yaml").write_text(pipeline_yaml(dag_id, source, target, execution))
            run = run_pipeline(dag_id)
            assert run.state == "success"
            check_quarantine(target, dag_id, rows, keyring)
            results.append(outcome(target, dag_id, run.run_id, keyring))
        finally:
            for _ in spaces:
                pass
    per_step, fused = results
    assert len(per_step["target"]) == 55 and len(per_step["quarantine"]) == 4
    assert fused["target"] == per_step["target"]
    assert fused["quarantine"] == per_step["quarantine"]
    assert fused["audit"] == per_step["audit"]


def watermarks(dag_id: str) -> dict[str, Any]:
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        stored = session.query(Variable).filter(Variable.key.like(f"sync:{dag_id}:%")).all()
        return {variable.key: variable.val for variable in stored}


def test_a_step_failing_mid_stream_leaves_target_and_watermark_alone(
    source: Namespace, pg_uri: str, monkeypatch: pytest.MonkeyPatch,
    run_pipeline: Callable[..., Any], configs_dir: Path, airflow_db: Path,
) -> None:
    """encrypt fails on its second batch while the load writes into PostgreSQL: the load rolls back, the
    watermark stays, each stage leaves its audit row, the error is encrypt's own; the rerun syncs it all."""
    from airflow_provider_sync.core.encrypt import Encryptor

    spaces = namespace("postgres", pg_uri)
    target = next(spaces)
    try:
        rows = create_source(source)
        dag_id = f"steps_crash_{source.schema}"
        target.dag_ids.append(dag_id)
        monkeypatch.setenv("AIRFLOW_CONN_STEPS_SRC", source.uri)
        monkeypatch.setenv("AIRFLOW_CONN_STEPS_DST", target.uri)
        keyring = set_secrets(monkeypatch, "steps_keyring", "steps_secret")
        (configs_dir / "steps_crash.yaml").write_text(pipeline_yaml(dag_id, source, target, "fused"))
        assert run_pipeline(dag_id).state == "success"
        committed = watermarks(dag_id)
        table = target.name("customers_out")
        before = target.fetch(f"SELECT * FROM {table} ORDER BY id")
        source.run(f"UPDATE {source.name('customers')} SET amount = amount + 1, "
                   "updated_at = updated_at + interval '1 day'")

        original = Encryptor.encrypt
        broken = failing_on_call(original, 2, "cipher unit gave up on the second batch")
        monkeypatch.setattr(Encryptor, "encrypt", broken)
        crashed = run_pipeline(dag_id)
        assert crashed.state == "failed"
        assert target.fetch(f"SELECT * FROM {table} ORDER BY id") == before, "the load rolled back"
        assert watermarks(dag_id) == committed, "the watermark did not move"
        audit = {r["step"]: r for r in target.fetch(
            "SELECT step, status, error_message FROM sync_audit WHERE dag_id = %s AND run_id = %s",
            [dag_id, crashed.run_id])}
        assert {"extract", "validate", "mask", "encrypt", "schema_map", "load"} <= set(audit), audit
        assert audit["encrypt"]["status"] == "failed" and audit["load"]["status"] == "failed", audit
        assert "cipher unit gave up" in audit["encrypt"]["error_message"]
        assert "cipher unit gave up" in audit["load"]["error_message"], "the load raised encrypt's error"

        monkeypatch.setattr(Encryptor, "encrypt", original)
        assert run_pipeline(dag_id).state == "success"
        after = {row["id"]: row for row in target.fetch(f"SELECT id, amount FROM {table}")}
        assert len(after) == 55
        moved = [r for r in rows if r["id"] in after]
        assert all(Decimal(str(after[r["id"]]["amount"])) == r["amount"] + 1 for r in moved)
        check_quarantine(target, dag_id, rows, keyring)
    finally:
        for _ in spaces:
            pass
