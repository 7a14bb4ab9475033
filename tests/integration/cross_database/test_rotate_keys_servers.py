"""Key rotation in place on real PostgreSQL and MariaDB: values written under k1, the primary switched to k2,
rotation run page by page; every value then names k2 and decrypts with a keyring that no longer holds k1.
A second run changes nothing, and the CLI's decrypt reads the rotated column back."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator

import pyarrow as pa
import pytest

from airflow_provider_sync.core.encrypt import decrypt_value, encrypt_array
from airflow_provider_sync.core.keyring import Keyring
from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.factory.cli import main
from airflow_provider_sync.pipeline.rotation import rotate_table_keys
from tests.integration.step_support import Namespace, namespace

pytestmark = pytest.mark.integration

ROWS = 1_234
K1, K2 = base64.b64encode(b"1" * 32).decode(), base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(params=["postgres", "mysql"])
def space(request: pytest.FixtureRequest) -> Iterator[Namespace]:
    uri = request.getfixturevalue("pg_uri" if request.param == "postgres" else "mysql_uri")
    yield from namespace(request.param, uri)


def seed(space: Namespace, old: Keyring) -> tuple[str, list[tuple[str, int, str | None, str]]]:
    """A table with a two-column primary key, a GCM column with NULLs and a SIV column, all under k1."""
    table = space.name("accounts")
    space.run(f"CREATE TABLE {table} (region VARCHAR(8), id INT, email TEXT, national_id TEXT, "
              "PRIMARY KEY (region, id))")
    clear = [(("eu", "us")[i % 2], i, None if i % 7 == 0 else f"user{i}@mail.test", f"ID-{i:06d}")
             for i in range(ROWS)]
    emails = encrypt_array(pa.array([c[2] for c in clear], pa.string()), old, f"{table}.email")
    ids = encrypt_array(pa.array([c[3] for c in clear]), old, f"{table}.national_id", "deterministic")
    encrypted = zip(clear, emails.to_pylist(), ids.to_pylist(), strict=True)
    space.many(f"INSERT INTO {table} VALUES (%s, %s, %s, %s)", [(c[0], c[1], e, n) for c, e, n in encrypted])
    return table, clear


def test_rotation_moves_every_value_to_the_new_primary(space: Namespace) -> None:
    old = Keyring.from_document({"primary": "k1", "keys": {"k1": K1}})
    both = Keyring.from_document({"primary": "k2", "keys": {"k1": K1, "k2": K2}})
    only_new = Keyring.from_document({"primary": "k2", "keys": {"k2": K2}})
    table, clear = seed(space, old)
    schema, _, name = table.rpartition(".")
    contexts = {"email": f"{table}.email", "national_id": f"{table}.national_id"}

    result = rotate_table_keys(space.info, TableRef(name, schema or None), contexts, both, batch_size=100)
    non_null = sum(1 for c in clear if c[2] is not None) + ROWS
    assert (result.values_reencrypted, result.rows_scanned, result.pages) == (non_null, ROWS, 13)
    assert result.from_key_ids == ["k1"] and result.key_id == "k2"

    rows = {(r["region"], r["id"]): r for r in space.fetch(f"SELECT * FROM {table}")}
    for region, row_id, email, national_id in clear:
        row = rows[(region, row_id)]
        if email is None:
            assert row["email"] is None
        else:
            assert row["email"].startswith("enc:v1:gcm:k2:")
            assert decrypt_value(row["email"], only_new, contexts["email"]) == email
        assert row["national_id"].startswith("enc:v1:siv:k2:")
        assert decrypt_value(row["national_id"], only_new, contexts["national_id"]) == national_id

    again = rotate_table_keys(space.info, TableRef(name, schema or None), contexts, both, batch_size=500)
    assert (again.values_reencrypted, again.rows_scanned) == (0, ROWS), "a second run is a no-op"


def test_cli_rotates_and_decrypts(
    space: Namespace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old = Keyring.from_document({"primary": "k1", "keys": {"k1": K1}})
    table, clear = seed(space, old)
    monkeypatch.setenv("AIRFLOW_CONN_ROTATE_DB", space.uri)
    monkeypatch.setenv("AIRFLOW_CONN_ROTATE_KEYRING", json.dumps(
        {"conn_type": "generic", "password": json.dumps({"primary": "k2", "keys": {"k1": K1, "k2": K2}})}))

    common = ["--keyring-conn-id", "rotate_keyring", "--conn-id", "rotate_db", "--table", table]
    columns = ["--column", "email", "--column", "national_id"]
    assert main(["rotate-keys", *common, *columns, "--batch-size", "400"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["from_key_ids"] == ["k1"] and report["rows_scanned"] == ROWS

    assert main(["decrypt", *common, "--column", "email", "--limit", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = sorted((c[0], c[1], c[2]) for c in clear)[:3]
    assert lines[0] == "region\tid\tkey_id\temail"
    assert lines[1:] == [f"{r}\t{i}\t{'None' if e is None else 'k2'}\t{e}" for r, i, e in expected]

    envelope = space.fetch(f"SELECT national_id FROM {table} WHERE id = 5")[0]["national_id"]
    assert main(["decrypt", "--keyring-conn-id", "rotate_keyring", "--context", f"{table}.national_id",
                 envelope]) == 0
    assert capsys.readouterr().out.strip() == "ID-000005"
