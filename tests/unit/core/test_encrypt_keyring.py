"""Encryption envelopes, associated data, keyrings and key rotation."""

from __future__ import annotations

import base64
import json
import os

import pyarrow as pa
import pytest

from airflow_provider_sync.config.steps.encrypt import EncryptStep
from airflow_provider_sync.core.encrypt import (
    CiphertextError,
    Encryptor,
    decrypt_array,
    decrypt_batch,
    decrypt_value,
    encrypt_array,
    encrypt_value,
    field_context,
    reencrypt_batch,
)
from airflow_provider_sync.core.keyring import Keyring, generate_keyring_json
from airflow_provider_sync.errors import IncompatibleSchemaError, KeyringError


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def ring(primary: str = "k1", *ids: str) -> Keyring:
    return Keyring.from_json(json.dumps({"primary": primary, "keys": {i: key() for i in ids or (primary,)}}))


K32 = base64.b64encode(b"k" * 32).decode()
K16 = base64.b64encode(b"k" * 16).decode()
VALUES = ["alice@example.com", "", "ünïcödé ✓ 日本", "x" * 100_000, None]


@pytest.mark.parametrize("mode", ["randomized", "deterministic"])
def test_round_trip_keeps_nulls_empty_unicode_and_long_values(mode: str) -> None:
    keyring = ring()
    encrypted = encrypt_array(pa.array(VALUES), keyring, "orders.email", mode)  # type: ignore[arg-type]
    token = "gcm" if mode == "randomized" else "siv"
    for value in encrypted.to_pylist()[:4]:
        assert value.startswith(f"enc:v1:{token}:k1:")
        assert value.isascii() and "+" not in value and "/" not in value
    assert encrypted[4].as_py() is None
    assert decrypt_array(encrypted, keyring, "orders.email").to_pylist() == VALUES


def test_randomized_mode_differs_each_time_deterministic_does_not() -> None:
    keyring = ring()
    randomized = encrypt_array(pa.array(["same", "same"]), keyring, "t.c").to_pylist()
    assert randomized[0] != randomized[1]
    deterministic = encrypt_array(pa.array(["same", "same"]), keyring, "t.c", "deterministic").to_pylist()
    assert deterministic[0] == deterministic[1]
    again = encrypt_array(pa.array(["same"]), keyring, "t.c", "deterministic").to_pylist()
    assert again[0] == deterministic[0]


def test_binary_and_non_text_values() -> None:
    keyring = ring()
    raw = pa.array([b"\x00\xff\x10", b"", None], pa.binary())
    encrypted = encrypt_array(raw, keyring, "t.blob")
    assert decrypt_array(encrypted, keyring, "t.blob", as_binary=True).to_pylist() == raw.to_pylist()
    with pytest.raises(CiphertextError, match="as_binary=True"):
        decrypt_array(encrypted, keyring, "t.blob")
    numbers = encrypt_array(pa.array([42, None], pa.int64()), keyring, "t.n")
    assert decrypt_array(numbers, keyring, "t.n").to_pylist() == ["42", None]


@pytest.mark.parametrize("mode", ["randomized", "deterministic"])
def test_value_copied_to_another_column_or_table_does_not_decrypt(mode: str) -> None:
    keyring = ring()
    envelope = encrypt_value("secret", keyring, field_context("orders", "email"), mode)  # type: ignore[arg-type]
    assert decrypt_value(envelope, keyring, "orders.email") == "secret"
    for other in ("orders.backup_email", "customers.email"):
        with pytest.raises(KeyringError, match="does not decrypt with key 'k1'"):
            decrypt_value(envelope, keyring, other)


def test_tampered_or_foreign_values_fail_clearly() -> None:
    keyring = ring()
    envelope = encrypt_value("secret", keyring, "t.c")
    head, payload = envelope.rsplit(":", 1)
    flipped = payload[:-3] + ("A" if payload[-3] != "A" else "B") + payload[-2:]
    with pytest.raises(KeyringError):
        decrypt_value(f"{head}:{flipped}", keyring, "t.c")
    with pytest.raises(KeyringError):  # header edited: mode/key id are bound as associated data
        decrypt_value(envelope.replace(":gcm:", ":siv:"), keyring, "t.c")
    with pytest.raises(CiphertextError, match="not an encrypted value"):
        decrypt_value("plain text", keyring, "t.c")
    with pytest.raises(CiphertextError, match="not an encrypted value"):
        decrypt_value("enc:v9:gcm:k1:AAAA", keyring, "t.c")
    with pytest.raises(CiphertextError, match="base64url"):
        decrypt_value("enc:v1:gcm:k1:@@@", keyring, "t.c")


def test_wrong_key_under_the_same_id_names_the_id() -> None:
    envelope = encrypt_value("secret", ring("prod-2024"), "t.c")
    with pytest.raises(KeyringError, match="'prod-2024'") as caught:
        decrypt_value(envelope, ring("prod-2024"), "t.c")
    assert "secret" not in str(caught.value)


def test_missing_key_names_the_id_and_the_ids_present() -> None:
    envelope = encrypt_value("secret", ring("k1"), "t.c")
    with pytest.raises(KeyringError, match=r"key id 'k1' is not in the keyring \(key ids: \['k2'\]\)"):
        decrypt_value(envelope, ring("k2"), "t.c")


def test_rotation_k1_to_k2() -> None:
    keys = {"k1": key(), "k2": key()}
    keyring_k1 = Keyring.from_json(json.dumps({"primary": "k1", "keys": keys}))
    step = EncryptStep.model_validate(
        {"keyring_conn_id": "keys", "columns": {"email": "deterministic", "ssn": "randomized"}}
    )
    batch = pa.record_batch({"id": [1, 2, 3], "email": ["a@x.io", None, "c@x.io"], "ssn": ["1", "2", ""]})
    written = Encryptor(step, keyring_k1, "orders").encrypt(batch)
    assert all(":k1:" in v for v in written.column("email").drop_null().to_pylist())

    keyring_k2 = keyring_k1.with_primary("k2")
    contexts = Encryptor(step, keyring_k2, "orders").contexts
    moved, info = reencrypt_batch(written, keyring_k2, contexts)
    assert info == {"values_reencrypted": 5, "from_key_ids": ["k1"], "key_id": "k2"}
    for column, token in (("email", "siv"), ("ssn", "gcm")):
        envelopes = moved.column(column).drop_null().to_pylist()
        assert all(v.startswith(f"enc:v1:{token}:k2:") for v in envelopes)
    assert moved.column("id").to_pylist() == [1, 2, 3]
    assert decrypt_batch(moved, keyring_k2, contexts).to_pylist() == batch.to_pylist()

    # Once everything is on k2, the old key can go; a second pass has nothing to move.
    only_k2 = Keyring.from_json(json.dumps({"primary": "k2", "keys": {"k2": keys["k2"]}}))
    assert decrypt_batch(moved, only_k2, contexts).to_pylist() == batch.to_pylist()
    _, again = reencrypt_batch(moved, only_k2, contexts)
    assert again["values_reencrypted"] == 0
    with pytest.raises(KeyringError, match="'k1'"):
        decrypt_batch(written, only_k2, contexts)


def test_new_data_uses_primary_and_old_keys_still_decrypt() -> None:
    keyring = ring("k1", "k1", "k2")
    old = encrypt_value("v", keyring, "t.c")
    rotated = keyring.with_primary("k2")
    new = encrypt_value("v", rotated, "t.c")
    assert ":k2:" in new and ":k1:" in old
    assert decrypt_array(pa.array([old, new]), rotated, "t.c").to_pylist() == ["v", "v"]


def test_context_override_makes_columns_comparable() -> None:
    step = EncryptStep.model_validate(
        {
            "keyring_conn_id": "keys",
            "columns": {
                "email": {"mode": "deterministic", "context": "crm.email"},
                "contact": {"mode": "deterministic", "context": "crm.email"},
                "plain": "deterministic",
            },
        }
    )
    keyring = ring()
    out = Encryptor(step, keyring, "orders").encrypt(
        pa.record_batch({"email": ["a@x.io"], "contact": ["a@x.io"], "plain": ["a@x.io"]})
    )
    assert out.column("email")[0] == out.column("contact")[0] != out.column("plain")[0]


def test_associated_table_overrides_the_target_name() -> None:
    step = EncryptStep.model_validate(
        {"keyring_conn_id": "keys", "columns": {"email": None}, "associated_table": "crm.customers"}
    )
    assert Encryptor(step, ring(), "staging_copy").contexts == {"email": "crm.customers.email"}


def test_encryptor_schema_metadata_and_missing_columns() -> None:
    step = EncryptStep.model_validate({"keyring_conn_id": "keys", "columns": {"n": "randomized"}})
    encryptor = Encryptor(step, ring("k7"), "t")
    batch = pa.record_batch({"n": pa.array([1, None, 3], pa.int32()), "other": [1, 2, 3]})
    out = encryptor.encrypt(batch)
    assert encryptor.output_schema(batch.schema) == out.schema
    assert encryptor.metadata() == {
        "rows_in": 3,
        "rows_out": 3,
        "columns_encrypted": {"n": "randomized"},
        "key_ids": ["k7"],
        "values_encrypted": 2,
    }
    with pytest.raises(IncompatibleSchemaError, match=r"\['n'\]"):
        encryptor.encrypt(pa.record_batch({"m": [1]}))


def test_gcm_nonces_are_unique_within_a_batch() -> None:
    encrypted = encrypt_array(pa.array(["v"] * 2000), ring(), "t.c").to_pylist()
    nonces = {base64.urlsafe_b64decode(v.rsplit(":", 1)[1])[:12] for v in encrypted}
    assert len(nonces) == 2000


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "does not hold a JSON keyring"),
        ('{"keys": {}}', 'holds no keys|needs "primary"'),
        ('{"primary": "k1"}', 'a "keys" object'),
        ('{"primary": "k9", "keys": {"k1": "' + K32 + '"}}', "'k9' is not in"),
        ('{"primary": "k1", "keys": {"k1": "' + K16 + '"}}', "16 bytes long"),
        ('{"primary": "k1", "keys": {"k1": "***"}}', "'k1' is not valid base64"),
        ('{"primary": "a:b", "keys": {"a:b": "' + K32 + '"}}', "not valid"),
        ('{"primary": "k1", "keys": {"k1": 5}}', "must be a base64 string"),
    ],
)
def test_bad_keyrings_are_refused_without_echoing_keys(document: str, message: str) -> None:
    with pytest.raises(KeyringError, match=message) as caught:
        Keyring.from_json(document, "connection 'keys'")
    assert K32 not in str(caught.value)


def test_keyring_accepts_64_byte_and_urlsafe_keys_and_hides_them() -> None:
    material = os.urandom(64)
    keyring = Keyring.from_json(
        json.dumps({"primary": "big", "keys": {"big": base64.urlsafe_b64encode(material).decode()}})
    )
    assert keyring.key_ids == ("big",) and keyring.primary_id == "big"
    assert base64.urlsafe_b64encode(material).decode() not in repr(keyring)
    assert decrypt_value(encrypt_value("v", keyring, "t.c", "deterministic"), keyring, "t.c") == "v"


def test_keyring_from_connection_password_or_extra() -> None:
    document = generate_keyring_json(("k1", "k2"))
    assert Keyring.from_connection_fields(document, None, "keys").primary_id == "k2"
    extra = json.dumps({"keyring": json.loads(document)})
    assert Keyring.from_connection_fields(None, extra, "keys").key_ids == ("k1", "k2")
    assert Keyring.from_connection_fields("", {"keyring": document}, "keys").primary_id == "k2"
    with pytest.raises(KeyringError, match="connection 'keys' holds no keyring"):
        Keyring.from_connection_fields(None, "{}", "keys")
