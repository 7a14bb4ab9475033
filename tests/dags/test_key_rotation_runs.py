"""Key rotation after real syncs: a DAG run encrypts under k1; the keyring connection then gets k2 as primary,
so the next run encrypts new rows under k2 while k1 rows still decrypt; RotateKeysOperator moves the rest,
after which every row names k2 and decrypts with a keyring that no longer holds k1."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.core.encrypt import decrypt_value
from airflow_provider_sync.core.keyring import Keyring
from airflow_provider_sync.operators.rotate import RotateKeysOperator
from tests.integration.step_support import Namespace, namespace

pytestmark = pytest.mark.integration

K1, K2 = base64.b64encode(os.urandom(32)).decode(), base64.b64encode(os.urandom(32)).decode()
T0 = dt.datetime(2026, 4, 1, tzinfo=dt.timezone.utc)


@pytest.fixture
def space(pg_uri: str) -> Iterator[Namespace]:
    yield from namespace("postgres", pg_uri)


def use_keyring(monkeypatch: pytest.MonkeyPatch, document: dict[str, Any]) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ROTATION_KEYRING",
                       json.dumps({"conn_type": "generic", "password": json.dumps(document)}))


def add_rows(space: Namespace, first: int, last: int) -> None:
    space.many(f"INSERT INTO {space.name('patients')} VALUES (%s, %s, %s, %s)",
               [(i, f"MRN-{i:05d}", f"diagnosis text {i}", T0 + dt.timedelta(minutes=i))
                for i in range(first, last + 1)])


def test_rotation_after_syncs(
    space: Namespace, configs_dir: Path, monkeypatch: pytest.MonkeyPatch, run_pipeline: Callable[..., Any]
) -> None:
    space.run(f"CREATE TABLE {space.name('patients')} (id int PRIMARY KEY, mrn text, diagnosis text, "
              "updated_at timestamptz)")
    add_rows(space, 1, 30)
    target = space.name("patients_copy")
    monkeypatch.setenv("AIRFLOW_CONN_ROTATION_DB", space.uri)
    use_keyring(monkeypatch, {"primary": "k1", "keys": {"k1": K1}})
    (configs_dir / "rotation.yaml").write_text(f"""
version: 1
dag_id: rotation_{space.schema}
default_args: {{retries: 0}}
source: {{conn_id: rotation_db, table: {space.name('patients')}}}
target: {{conn_id: rotation_db, table: {target}, mode: upsert, keys: [id], create_if_missing: true}}
incremental: {{strategy: timestamp, column: updated_at, key: [id]}}
steps:
  - encrypt:
      keyring_conn_id: rotation_keyring
      columns: {{mrn: deterministic, diagnosis: randomized}}
""")
    assert run_pipeline(f"rotation_{space.schema}").state == "success"

    use_keyring(monkeypatch, {"primary": "k2", "keys": {"k1": K1, "k2": K2}})
    add_rows(space, 31, 40)
    assert run_pipeline(f"rotation_{space.schema}").state == "success"
    before = {r["id"]: r for r in space.fetch(f"SELECT * FROM {target}")}
    assert {i for i, r in before.items() if ":k2:" in r["mrn"]} == set(range(31, 41)), "new rows use k2"

    rotate = RotateKeysOperator(task_id="rotate", conn_id="rotation_db", table=target,
                                columns={"mrn": None, "diagnosis": None}, keyring_conn_id="rotation_keyring",
                                batch_size=7)
    result = rotate.execute({})
    assert result["values_reencrypted"] == 60 and result["from_key_ids"] == ["k1"]

    only_k2 = Keyring.from_document({"primary": "k2", "keys": {"k2": K2}})
    after = {r["id"]: r for r in space.fetch(f"SELECT * FROM {target}")}
    assert sorted(after) == list(range(1, 41))
    for i, row in after.items():
        assert row["mrn"].startswith("enc:v1:siv:k2:") and row["diagnosis"].startswith("enc:v1:gcm:k2:")
        assert decrypt_value(row["mrn"], only_k2, f"{target}.mrn") == f"MRN-{i:05d}"
        assert decrypt_value(row["diagnosis"], only_k2, f"{target}.diagnosis") == f"diagnosis text {i}"
    assert after[35]["mrn"] == before[35]["mrn"], "rows already under k2 are left alone"
