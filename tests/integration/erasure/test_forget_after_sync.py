"""End to end on real PostgreSQL: a DAG run validates (quarantining a bad row of customer 42) and encrypts
the address per subject, so subject keys land in the target's ``sync_subject_keys``; ``airflow-sync forget``
then removes customer 42's rows, quarantine row and key, while customer 7 still decrypts. Committed runs'
staged files are already gone (commit_watermark removes them), so forget finds no staged folder."""

from __future__ import annotations

import datetime as dt
import inspect
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.core.encrypt import decrypt_array
from airflow_provider_sync.core.subject_keys import SubjectKeys, SubjectKeyShreddedError
from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.factory.cli import main
from airflow_provider_sync.operators.base import StepOutcome
from airflow_provider_sync.operators.steps import EncryptOperator, keyring_from_connection
from airflow_provider_sync.pipeline.subject_keys import SubjectKeyTable, subject_keys_for
from tests.dags.conftest import configs_dir, run_pipeline
from tests.integration.step_support import Namespace, namespace, set_secrets

__all__ = ["configs_dir", "run_pipeline"]
pytestmark = pytest.mark.integration
T0 = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)


@pytest.fixture
def space(pg_uri: str) -> Iterator[Namespace]:
    yield from namespace("postgres", pg_uri)


def run_with_subject_keys(self: EncryptOperator, context: Any) -> StepOutcome:
    """EncryptOperator.run with the subject keys passed to the Encryptor (the change proposed for
    operators/steps.py; used only while the operator does not do it itself)."""
    from airflow_provider_sync.core.encrypt import Encryptor
    from airflow_provider_sync.staging.manifest import StepRecord

    manifest = self.input_manifest(context)
    step = self.step_model
    keyring = keyring_from_connection(step.keyring_conn_id)
    target = self.table.target
    subject_keys = subject_keys_for(
        step, keyring, lambda: self.connection_info(str(target.conn_id)), target.table
    )
    encryptor = Encryptor(step, keyring, target.table, subject_keys=subject_keys)
    schema = encryptor.output_schema(manifest.arrow_schema)
    files, rows = self.stage(context, manifest, schema, encryptor.encrypt)
    details = encryptor.metadata()
    record = StepRecord(self.step_name, manifest.rows, rows, details=details)
    following = manifest.next_step(self.step_name, files, rows, schema, record)
    audit = {"rows_encrypted": details["values_encrypted"], "key_ids": details["key_ids"]}
    return StepOutcome(following.to_json(), audit)


def test_forget_after_a_real_sync(
    space: Namespace,
    configs_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_pipeline: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    if "subject_keys" not in inspect.getsource(EncryptOperator.run):
        monkeypatch.setattr(EncryptOperator, "run", run_with_subject_keys)
    ring = set_secrets(monkeypatch, "fs_keyring", "fs_secret")
    monkeypatch.setenv("AIRFLOW_CONN_FS_DB", space.uri)
    source, target = space.name("customers_src"), space.name("customers")
    space.run(
        f"CREATE TABLE {source} (id int PRIMARY KEY, customer_id int, name text, address text, "
        "updated_at timestamptz)"
    )
    rows = [
        (1, 42, "Ann", "42 Erasure Lane"),
        (2, 7, "Bob", "7 Kept Road"),
        (3, 42, None, "42 Bad Row Street"),
        (4, 42, "Ann", "42 Second Home"),
    ]
    space.many(
        f"INSERT INTO {source} VALUES (%s, %s, %s, %s, %s)",
        [(*row, T0 + dt.timedelta(minutes=i)) for i, row in enumerate(rows)],
    )
    dag_id = f"forget_sync_{space.schema}"
    space.dag_ids.append(dag_id)
    path = configs_dir / "forget_sync.yaml"
    path.write_text(f"""
version: 1
dag_id: {dag_id}
default_args: {{retries: 0}}
source: {{conn_id: fs_db, table: {source}}}
target: {{conn_id: fs_db, table: {target}, mode: upsert, keys: [id], create_if_missing: true}}
audit: {{schema: {space.schema}}}
incremental: {{strategy: timestamp, column: updated_at, key: [id]}}
steps:
  - validate:
      on_invalid: quarantine
      rules: {{name: {{not_null: true}}}}
  - encrypt:
      keyring_conn_id: fs_keyring
      columns: {{address: {{per_subject: customer_id}}}}
""")
    assert run_pipeline(dag_id).state == "success"
    loaded = space.fetch(f"SELECT id, customer_id, address FROM {target} ORDER BY id")
    assert [(r["id"], r["customer_id"]) for r in loaded] == [(1, 42), (2, 7), (4, 42)]
    assert all(r["address"].startswith("enc:v1:subj:k1:") for r in loaded)
    assert [
        (q["row_json"]["customer_id"], q["row_json"]["address"][:11]) for q in space.quarantine(dag_id)
    ] == [(42, "enc:v1:gcm:")]  # quarantined before the encrypt step, yet protected (under the keyring)
    keys = SubjectKeys(ring, SubjectKeyTable(space.info, TableRef("sync_subject_keys", space.schema)))
    id42, id7 = (keys.subject_id("customer_id", v, create=False) for v in ("42", "7"))
    assert {
        r["subject_id"]
        for r in space.fetch(
            f"SELECT subject_id FROM \"{space.schema}\".sync_subject_keys WHERE scope = 'customer_id'"
        )
    } == {id42, id7}

    capsys.readouterr()
    assert main(["forget", "--pipeline", str(path), "--subject-column", "customer_id", "--value", "42"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{\n") :])
    assert (result["rows"], result["quarantine_rows"]) == ({"customers": 2}, {"customers": 1})
    assert (result["subject_keys_deleted"], result["staged_folders_removed"]) == (1, {"customers": 0})
    remaining = space.fetch(f"SELECT id, customer_id, address FROM {target} ORDER BY id")
    assert [(r["id"], r["customer_id"]) for r in remaining] == [(2, 7)]
    assert space.quarantine(dag_id) == []
    context = f"{target}.address"
    fresh = SubjectKeys(ring, keys.store)
    assert decrypt_array(
        pa.array([remaining[0]["address"]]), ring, context, subject_keys=fresh
    ).to_pylist() == ["7 Kept Road"]
    with pytest.raises(SubjectKeyShreddedError, match=str(id42)):
        decrypt_array(pa.array([loaded[0]["address"]]), ring, context, subject_keys=fresh)
    audit = space.fetch(f'SELECT * FROM "{space.schema}".sync_audit WHERE step = %s', ["forget"])
    assert [(r["table_name"], r["rows_deleted"]) for r in audit] == [("customers", 2)]
    assert not [
        t for t in ("42 Erasure Lane", "42 Second Home", "Ann") if t in json.dumps(audit, default=str)
    ]
