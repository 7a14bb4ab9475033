"""Erasure of a data subject on real PostgreSQL and MariaDB.

Two target tables of one pipeline hold rows of customers 42 and 7, with an address and an order note
encrypted per subject (subject keys in the real ``sync_subject_keys`` table), quarantined rows of both
customers and staged run folders. ``airflow-sync forget --dry-run`` counts and changes nothing; ``forget``
then leaves no row, quarantine row, subject key, staged file or audit plaintext of customer 42, a copy of
42's ciphertext no longer decrypts (an error naming the shredded key), and customer 7 still decrypts.
``--mode pseudonymise`` keeps 7's rows under one random token with the protected columns cleared.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.config.steps.encrypt import EncryptStep
from airflow_provider_sync.core.encrypt import Encryptor, decrypt_array
from airflow_provider_sync.core.keyring import Keyring
from airflow_provider_sync.core.subject_keys import SubjectKeys, SubjectKeyShreddedError
from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.factory.cli import main
from airflow_provider_sync.operators.forget import ForgetSubjectOperator
from airflow_provider_sync.pipeline.quarantine import QuarantineWriter
from airflow_provider_sync.pipeline.subject_keys import SubjectKeyTable, rewrap_subject_keys, subject_keys_for
from airflow_provider_sync.staging.files import safe_component
from tests.integration.step_support import Namespace, namespace, set_secrets

pytestmark = pytest.mark.integration

KEYRING_CONN, DB_CONN = "erase_keyring", "erase_db"
CUSTOMERS = [(42, "Ann Subject", "42 Erasure Lane"), (7, "Bob Keeps", "7 Kept Road")]
ORDERS = [
    (1, 42, "note-of-42-a"),
    (2, 42, "note-of-42-b"),
    (3, 7, "note-of-7-a"),
    (4, 42, "note-of-42-c"),
    (5, 7, "note-of-7-b"),
]
PLAINTEXT_OF_42 = ["Ann Subject", "42 Erasure Lane", "note-of-42-a", "note-of-42-b", "note-of-42-c"]


@pytest.fixture(params=["postgres", "mysql"])
def space(request: pytest.FixtureRequest) -> Iterator[Namespace]:
    uri = request.getfixturevalue("pg_uri" if request.param == "postgres" else "mysql_uri")
    yield from namespace(request.param, uri)


def encrypt_step(column: str) -> dict[str, Any]:
    return {"keyring_conn_id": KEYRING_CONN, "columns": {column: {"per_subject": "customer_id"}}}


class Scenario:
    """The pipeline file, its two tables with encrypted rows, quarantine rows and staged runs."""

    def __init__(self, space: Namespace, ring: Keyring, tmp_path: Path) -> None:
        self.space, self.ring = space, ring
        self.dag_id = f"erase_{space.schema or space.prefix.rstrip('_')}"
        space.dag_ids.append(self.dag_id)
        self.other_dag = f"other_{self.dag_id}"
        self.schema = space.schema
        self.key_table = TableRef("sync_subject_keys", self.schema)
        self.quarantine_table = TableRef("sync_quarantine", self.schema)
        self.audit = f"{space.prefix}sync_audit"
        self.staging = tmp_path / "staging"
        self.path = tmp_path / "erase.yaml"
        self.envelopes: dict[str, list[str]] = {}

    def write_pipeline(self) -> None:
        space = self.space
        audit_schema = f", schema: {self.schema}" if self.schema else ""
        self.path.write_text(f"""
version: 1
dag_id: {self.dag_id}
source: {{conn_id: {DB_CONN}, table: {space.name("source")}}}
target: {{conn_id: {DB_CONN}, mode: upsert}}
audit: {{table: {self.audit}{audit_schema}}}
tables:
  - name: customers
    target: {{table: {space.name("customers")}, keys: [customer_id]}}
    steps:
      - encrypt: {json.dumps(encrypt_step("address"))}
  - name: orders
    target: {{table: {space.name("orders")}, keys: [order_id]}}
    steps:
      - encrypt: {json.dumps(encrypt_step("note"))}
""")

    def encrypt(self, name: str, column: str, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Encrypt as the encrypt step does, with subject keys in the target's real key table."""
        step = EncryptStep.model_validate(encrypt_step(column))
        table = self.space.name(name)
        keys = subject_keys_for(step, self.ring, lambda: self.space.info, table)
        encrypted = Encryptor(step, self.ring, table, subject_keys=keys).encrypt(batch)
        self.envelopes[name] = encrypted.column(column).to_pylist()
        return encrypted

    def seed(self) -> None:
        space = self.space
        space.run(
            f"CREATE TABLE {space.name('customers')} (customer_id INT PRIMARY KEY, name TEXT, address TEXT)"
        )
        space.run(
            f"CREATE TABLE {space.name('orders')} (order_id INT PRIMARY KEY, customer_id INT, note TEXT)"
        )
        customers = self.encrypt(
            "customers",
            "address",
            pa.RecordBatch.from_pylist(
                [{"customer_id": c, "name": n, "address": a} for c, n, a in CUSTOMERS]
            ),
        )
        orders = self.encrypt(
            "orders",
            "note",
            pa.RecordBatch.from_pylist([{"order_id": o, "customer_id": c, "note": n} for o, c, n in ORDERS]),
        )
        space.many(
            f"INSERT INTO {space.name('customers')} VALUES (%s, %s, %s)",
            [tuple(r.values()) for r in customers.to_pylist()],
        )
        space.many(
            f"INSERT INTO {space.name('orders')} VALUES (%s, %s, %s)",
            [tuple(r.values()) for r in orders.to_pylist()],
        )
        rejected = pa.RecordBatch.from_pylist(
            [
                {"order_id": 9, "customer_id": 42, "note": "note-of-42-q"},
                {"order_id": 10, "customer_id": 7, "note": "note-of-7-q"},
            ]
        )
        with QuarantineWriter.open(space.info, self.quarantine_table) as writer:
            writer.write(self.dag_id, "run_1", "orders", "validate", rejected, ["r", "r"], ["bad", "bad"])
            # Another pipeline's row of the same customer is not this erasure's to delete.
            writer.write(self.other_dag, "run_1", "orders", "validate", rejected.slice(0, 1), ["r"], ["x"])
        self.space.dag_ids.append(self.other_dag)
        self.stage("run_with_42", [42, 7])
        self.stage("run_without_42", [7])

    def stage(self, run_id: str, customers: list[int]) -> None:
        folder = self.staging / safe_component(self.dag_id) / run_id / "orders" / "extract"
        folder.mkdir(parents=True)
        batch = pa.record_batch(
            {"customer_id": pa.array(customers, pa.int64()), "note": [f"staged-{c}" for c in customers]}
        )
        with (
            pa.OSFile(str(folder / "part-00000.arrow"), "wb") as sink,
            pa.ipc.new_stream(sink, batch.schema) as writer,
        ):
            writer.write_batch(batch)

    def forget(self, *extra: str, value: str = "42") -> dict[str, Any]:
        args = ["forget", "--pipeline", str(self.path), "--subject-column", "customer_id", "--value", value]
        return self.cli(*args, *extra)

    def cli(self, *args: str) -> dict[str, Any]:
        capture = self.capsys
        capture.readouterr()
        assert main(list(args)) == 0
        out = capture.readouterr().out
        start = out.index("{\n")  # Airflow may log lines to stdout before the JSON document
        return dict(json.loads(out[start:]))

    capsys: pytest.CaptureFixture[str]

    def rows(self, name: str, order: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.space.run(f"SELECT * FROM {self.space.name(name)} ORDER BY {order}")]

    def quarantined(self) -> list[tuple[str, dict[str, Any]]]:
        table = self.space.dialect.qualify(self.quarantine_table)
        rows = self.space.run(
            f"SELECT dag_id, row_json FROM {table} WHERE dag_id IN (%s, %s) ORDER BY 1",
            [self.dag_id, self.other_dag],
        )
        return [(d, j if isinstance(j, dict) else json.loads(j)) for d, j in rows]

    def subject_ids(self) -> list[str]:
        keys = SubjectKeys(self.ring, SubjectKeyTable(self.space.info, self.key_table))
        return [str(keys.subject_id("customer_id", v, create=False)) for v in ("42", "7")]

    def stored_keys(self) -> set[str]:
        return set(SubjectKeyTable(self.space.info, self.key_table).fetch(self.subject_ids()))

    def cleanup_keys(self) -> None:
        """The MariaDB key table is shared by the tests of the database: remove this test's rows."""
        keys = SubjectKeys(self.ring, SubjectKeyTable(self.space.info, self.key_table))
        ids = [*self.subject_ids(), str(keys.id_secret(create=False) and keys.id_secret_id)]
        table = self.space.dialect.qualify(self.key_table)
        self.space.run(f"DELETE FROM {table} WHERE subject_id IN (%s, %s, %s)", ids)


@pytest.fixture
def scenario(
    space: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Scenario]:
    ring = set_secrets(monkeypatch, KEYRING_CONN, "erase_unused_secret")
    monkeypatch.setenv(f"AIRFLOW_CONN_{DB_CONN.upper()}", space.uri)
    made = Scenario(space, ring, tmp_path)
    monkeypatch.setenv("SYNC_STAGING_BASE", f"file://{made.staging}")
    made.capsys = capsys
    made.write_pipeline()
    made.seed()
    try:
        yield made
    finally:
        made.cleanup_keys()


def test_forget_erases_subject_42_everywhere_and_keeps_7(scenario: Scenario) -> None:
    ring, space = scenario.ring, scenario.space
    id42, id7 = scenario.subject_ids()
    assert scenario.stored_keys() == {id42, id7}
    before = (scenario.rows("customers", "customer_id"), scenario.rows("orders", "order_id"))

    dry = scenario.forget("--dry-run")
    audit_id = ring.subject_id("k1", "customer_id", "42")  # the audit's HMAC, keyed by the keyring
    assert dry["dry_run"] is True and dry["subject"] == f"hmac-sha256:{audit_id}"
    assert (dry["rows"], dry["quarantine_rows"]) == (
        {"customers": 1, "orders": 3},
        {"customers": 0, "orders": 1},
    )
    assert (dry["subject_keys_deleted"], dry["subject_key_ids"]) == (1, [id42])
    assert dry["staged_folders_removed"] == {"customers": 0, "orders": 1}
    assert (scenario.rows("customers", "customer_id"), scenario.rows("orders", "order_id")) == before
    assert scenario.stored_keys() == {id42, id7} and len(scenario.quarantined()) == 3

    done = scenario.forget()
    assert {k: done[k] for k in ("rows", "quarantine_rows", "subject_keys_deleted")} == {
        "rows": {"customers": 1, "orders": 3},
        "quarantine_rows": {"customers": 0, "orders": 1},
        "subject_keys_deleted": 1,
    }
    customers, orders = scenario.rows("customers", "customer_id"), scenario.rows("orders", "order_id")
    assert [r[0] for r in customers] == [7] and [(r[0], r[1]) for r in orders] == [(3, 7), (5, 7)]
    assert [(d, j["customer_id"]) for d, j in scenario.quarantined()] == [
        ("erase_" + scenario.dag_id[6:], 7),
        (scenario.other_dag, 42),
    ]
    assert scenario.stored_keys() == {id7}
    run_root = scenario.staging / safe_component(scenario.dag_id)
    assert (
        not (run_root / "run_with_42" / "orders").exists()
        and (run_root / "run_without_42" / "orders").exists()
    )

    # A copy of 42's ciphertext (a backup, a Kafka record) no longer opens; 7's still does.
    keys = SubjectKeys(ring, SubjectKeyTable(space.info, scenario.key_table))
    with pytest.raises(SubjectKeyShreddedError, match=id42):
        decrypt_array(
            pa.array(scenario.envelopes["customers"][:1]),
            ring,
            f"{space.name('customers')}.address",
            subject_keys=keys,
        )
    assert decrypt_array(
        pa.array([customers[0][2]]), ring, f"{space.name('customers')}.address", subject_keys=keys
    ).to_pylist() == ["7 Kept Road"]
    notes = decrypt_array(
        pa.array([r[2] for r in orders]), ring, f"{space.name('orders')}.note", subject_keys=keys
    )
    assert notes.to_pylist() == ["note-of-7-a", "note-of-7-b"]

    audit = space.fetch(
        f"SELECT * FROM {space.dialect.qualify(TableRef(scenario.audit, scenario.schema))} "
        "ORDER BY table_name"
    )
    assert [(r["step"], r["table_name"], r["rows_deleted"], r["status"]) for r in audit] == [
        ("forget", "customers", 1, "success"),
        ("forget", "orders", 3, "success"),
    ]
    assert {r["source"] for r in audit} == {f"subject customer_id hmac-sha256:{audit_id}"}
    assert all(
        json.loads(r["key_ids"]) == [id42] if isinstance(r["key_ids"], str) else r["key_ids"] == [id42]
        for r in audit
    )
    text = json.dumps(audit, default=str)
    assert not [p for p in [*PLAINTEXT_OF_42, "note-of-42-q", "staged-42"] if p in text]
    assert not [v for r in audit for v in r.values() if v in (42, "42")]


def test_pseudonymise_keeps_rows_under_one_token(scenario: Scenario) -> None:
    # The pipeline named by its dag_id in a configs folder.
    args = ["forget", "--pipeline", scenario.dag_id, "--configs", str(scenario.path.parent)]
    result = scenario.cli(*args, "--subject-column", "customer_id", "--value", "7", "--mode", "pseudonymise")
    assert result["rows"] == {"customers": 1, "orders": 2}
    customers = dict((r[0], r[1:]) for r in scenario.rows("customers", "customer_id"))
    (token,) = [c for c in customers if c != 42]
    assert token < 0 and customers[token] == ("Bob Keeps", None)
    orders = scenario.rows("orders", "order_id")
    assert [(r[0], r[1], r[2]) for r in orders if r[1] != 42] == [(3, token, None), (5, token, None)]
    assert [j["customer_id"] for _, j in scenario.quarantined()] == [42, 42]


def test_operator_reads_the_value_from_the_run_conf(scenario: Scenario) -> None:
    operator = ForgetSubjectOperator(
        task_id="forget", pipeline=str(scenario.path), subject_column="customer_id", value_param="customer_id"
    )
    assert "value" not in operator.template_fields
    dag_run = type("Run", (), {"conf": {"customer_id": 42}})()
    result = operator.execute({"dag_run": dag_run, "params": {}})  # type: ignore[arg-type]
    assert result["rows"] == {"customers": 1, "orders": 3} and result["subject_keys_deleted"] == 1
    assert "42" not in json.dumps(
        {k: v for k, v in result.items() if k not in ("subject", "subject_key_ids")}
    )
    assert [r[0] for r in scenario.rows("customers", "customer_id")] == [7]
    empty = ForgetSubjectOperator(
        task_id="forget_empty",
        pipeline=str(scenario.path),
        subject_column="customer_id",
        value_param="customer_id",
    )
    with pytest.raises(TerminalError, match="no subject value"):
        empty.execute({"dag_run": type("Run", (), {"conf": {}})(), "params": {}})  # type: ignore[arg-type]


def test_after_rewrapping_a_rotated_keyring_without_the_old_key_still_decrypts_and_forgets(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = json.loads(json.loads(os.environ[f"AIRFLOW_CONN_{KEYRING_CONN.upper()}"])["password"])
    new_key = base64.b64encode(os.urandom(32)).decode()
    rotated = Keyring.from_document({"primary": "k2", "keys": {**old["keys"], "k2": new_key}})
    ids_before = scenario.subject_ids()
    result = rewrap_subject_keys(scenario.space.info, scenario.key_table, rotated)
    assert (result["keys_rewrapped"], result["from_key_ids"], result["key_id"]) == (3, ["k1"], "k2")
    assert rewrap_subject_keys(scenario.space.info, scenario.key_table, rotated)["keys_rewrapped"] == 0

    only_new = {"primary": "k2", "keys": {"k2": new_key}}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{KEYRING_CONN.upper()}",
        json.dumps({"conn_type": "generic", "password": json.dumps(only_new)}),
    )
    scenario.ring = Keyring.from_document(only_new)
    assert scenario.subject_ids() == ids_before  # ids survive the rotation
    keys = SubjectKeys(scenario.ring, SubjectKeyTable(scenario.space.info, scenario.key_table))
    address = f"{scenario.space.name('customers')}.address"
    assert decrypt_array(
        pa.array(scenario.envelopes["customers"]), scenario.ring, address, subject_keys=keys
    ).to_pylist() == ["42 Erasure Lane", "7 Kept Road"]
    assert scenario.forget()["subject_keys_deleted"] == 1
    assert scenario.stored_keys() == {ids_before[1]}
