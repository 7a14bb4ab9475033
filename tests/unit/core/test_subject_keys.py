"""Per-subject keys (crypto-shredding): envelopes, key reuse, shredding, rotation and the step model."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pyarrow as pa
import pytest
from pydantic import ValidationError

from airflow_provider_sync.config.steps.encrypt import EncryptStep
from airflow_provider_sync.core.encrypt import (
    Encryptor,
    decrypt_array,
    decrypt_batch,
    encrypt_per_subject,
    reencrypt_array,
)
from airflow_provider_sync.core.keyring import Keyring
from airflow_provider_sync.core.subject_keys import (
    ID_SECRET_SCOPE,
    StoredSubjectKey,
    SubjectKeys,
    SubjectKeyShreddedError,
    rewrap_subject_key,
    unwrap_subject_key,
)
from airflow_provider_sync.errors import KeyringError

K1 = base64.b64encode(b"1" * 32).decode()
K2 = base64.b64encode(b"2" * 32).decode()
CONTEXT = "crm.customers.address"


class MemoryStore:
    """A key table in a dict, counting round trips."""

    name = "memory.sync_subject_keys"

    def __init__(self) -> None:
        self.rows: dict[str, StoredSubjectKey] = {}
        self.fetches = 0

    def fetch(self, subject_ids: Sequence[str]) -> dict[str, StoredSubjectKey]:
        self.fetches += 1
        return {i: self.rows[i] for i in subject_ids if i in self.rows}

    def insert(self, keys: Sequence[StoredSubjectKey]) -> None:
        for key in keys:
            self.rows.setdefault(key.subject_id, key)

    def fetch_scope(self, scope: str) -> list[StoredSubjectKey]:
        return [row for row in self.rows.values() if row.scope == scope]


def keyring(primary: str = "k1", **keys: str) -> Keyring:
    return Keyring.from_document({"primary": primary, "keys": keys or {"k1": K1}})


def encrypt(values: list[str | None], subjects: list[int | None], keys: SubjectKeys) -> pa.Array:
    return encrypt_per_subject(
        pa.array(values, pa.string()),
        pa.array(subjects, pa.int64()),
        keys.keyring,
        keys,
        "customer_id",
        CONTEXT,
    )


def test_each_subject_gets_one_key_and_envelopes_name_it() -> None:
    ring, store = keyring(), MemoryStore()
    keys = SubjectKeys(ring, store)
    sealed = encrypt(["a 42", "b 7", "c 42"], [42, 7, 42], keys).to_pylist()
    assert keys.keys_created == 2 and len(store.rows) == 3  # two subjects and the table's id secret
    id42, id7 = keys.subject_id("customer_id", "42"), keys.subject_id("customer_id", "7")
    assert id42 is not None and id7 is not None
    assert set(store.rows) == {id42, id7, keys.id_secret_id} and len(id42) == 32
    assert keys.subject_id("account_id", "42") != id42  # the scope is part of the id
    assert sealed[0].startswith(f"enc:v1:subj:k1:{id42}:") and sealed[2].startswith(f"enc:v1:subj:k1:{id42}:")
    assert sealed[1].startswith(f"enc:v1:subj:k1:{id7}:")
    assert sealed[0] != sealed[2]  # randomized: a fresh nonce per value
    # A second batch reuses the stored keys instead of making new ones.
    again = SubjectKeys(ring, store)
    encrypt(["d 42"], [42], again)
    assert again.keys_created == 0 and len(store.rows) == 3
    assert decrypt_array(pa.array(sealed), ring, CONTEXT, subject_keys=again).to_pylist() == [
        "a 42",
        "b 7",
        "c 42",
    ]


def test_deleting_a_subject_key_shreds_only_that_subject() -> None:
    ring, store = keyring(), MemoryStore()
    keys = SubjectKeys(ring, store)
    sealed = encrypt(["a 42", "b 7"], [42, 7], keys)
    id42 = keys.subject_id("customer_id", "42", create=False)
    assert id42 is not None
    del store.rows[id42]
    fresh = SubjectKeys(ring, store)
    assert decrypt_array(sealed.slice(1), ring, CONTEXT, subject_keys=fresh).to_pylist() == ["b 7"]
    with pytest.raises(SubjectKeyShreddedError) as error:
        decrypt_array(sealed.slice(0, 1), ring, CONTEXT, subject_keys=fresh)
    assert id42 in str(error.value) and "erased" in str(error.value) and "a 42" not in str(error.value)


def test_null_subjects_use_the_keyring_and_null_values_stay_null() -> None:
    ring, store = keyring(), MemoryStore()
    keys = SubjectKeys(ring, store)
    sealed = encrypt(["orphan", None, "x"], [None, 42, 42], keys).to_pylist()
    assert (
        sealed[0].startswith("enc:v1:gcm:k1:") and sealed[1] is None and sealed[2].startswith("enc:v1:subj:")
    )
    assert keys.keys_created == 1
    assert decrypt_array(pa.array(sealed), ring, CONTEXT, subject_keys=keys).to_pylist() == [
        "orphan",
        None,
        "x",
    ]


def test_decrypting_needs_the_key_table_and_the_right_context() -> None:
    ring, store = keyring(), MemoryStore()
    sealed = encrypt(["secret"], [42], SubjectKeys(ring, store))
    with pytest.raises(KeyringError, match="per-subject key"):
        decrypt_array(sealed, ring, CONTEXT)
    with pytest.raises(KeyringError, match="does not decrypt"):
        decrypt_array(sealed, ring, "crm.customers.other", subject_keys=SubjectKeys(ring, store))


def test_rotation_keeps_subject_ids_and_rewrapping_retires_the_old_key() -> None:
    old, store = keyring(), MemoryStore()
    first = SubjectKeys(old, store)
    sealed = encrypt(["v"], [42], first)
    rotated = keyring("k2", k1=K1, k2=K2)
    keys = SubjectKeys(rotated, store)
    encrypt(["w"], [42], keys)
    assert keys.keys_created == 0  # the same subject id under the new primary: not duplicated
    assert keys.subject_id("customer_id", "42") == first.subject_id("customer_id", "42")
    moved, count, ids = reencrypt_array(sealed, rotated, CONTEXT)
    assert (count, ids, moved.to_pylist()) == (0, set(), sealed.to_pylist())
    # Re-wrap every row under k2; then a keyring without k1 still finds and opens everything.
    for subject_id, stored in list(store.rows.items()):
        new = rewrap_subject_key(rotated, stored)
        assert new is not None and new.kek_id == "k2" and new.subject_id == subject_id
        store.rows[subject_id] = new
        assert rewrap_subject_key(rotated, new) is None
    only_k2 = SubjectKeys(keyring("k2", k2=K2), store)
    assert only_k2.subject_id("customer_id", "42") == first.subject_id("customer_id", "42")
    assert decrypt_array(sealed, only_k2.keyring, CONTEXT, subject_keys=only_k2).to_pylist() == ["v"]


def test_a_tampered_key_row_is_a_keyring_error_naming_the_subject_key() -> None:
    ring, store = keyring(), MemoryStore()
    encrypt(["v"], [42], SubjectKeys(ring, store))
    (stored,) = [row for row in store.rows.values() if row.scope != ID_SECRET_SCOPE]
    other = StoredSubjectKey(stored.subject_id, "account_id", stored.kek_id, stored.wrapped_key)
    with pytest.raises(KeyringError, match=stored.subject_id):
        unwrap_subject_key(ring, other)


def test_encryptor_encrypts_per_subject_columns_and_reports_counts() -> None:
    step = EncryptStep.model_validate(
        {"keyring_conn_id": "kr", "columns": {"address": {"per_subject": "customer_id"}, "ssn": "randomized"}}
    )
    assert step.per_subject_columns == {"address": "customer_id"}
    ring, store = keyring(), MemoryStore()
    encryptor = Encryptor(step, ring, "crm.customers", subject_keys=SubjectKeys(ring, store))
    batch = pa.record_batch(
        {"customer_id": [42, 7], "address": ["Main St 1", "Elm St 2"], "ssn": ["111", "222"]}
    )
    out = encryptor.encrypt(batch)
    # Without the key table the contexts still serve (quarantine protection); encrypting says what is missing.
    keyless = Encryptor(step, ring, "crm.customers")
    assert keyless.contexts == encryptor.contexts
    with pytest.raises(KeyringError, match="'address' is encrypted per subject 'customer_id'"):
        keyless.encrypt(batch)
    assert out.column("customer_id").to_pylist() == [42, 7]
    assert all(v.startswith("enc:v1:subj:k1:") for v in out.column("address").to_pylist())
    assert all(v.startswith("enc:v1:gcm:k1:") for v in out.column("ssn").to_pylist())
    assert SubjectKeys(ring, MemoryStore()).subject_id("customer_id", "42", create=False) is None

    meta = encryptor.metadata()
    assert meta["columns_per_subject"] == {"address": "customer_id"} and meta["subject_keys_created"] == 2
    clear = decrypt_batch(out, ring, encryptor.contexts, subject_keys=SubjectKeys(ring, store))
    assert clear.column("address").to_pylist() == ["Main St 1", "Elm St 2"]


def test_two_keyrings_share_a_key_table_with_their_own_id_secrets() -> None:
    store = MemoryStore()
    mine, theirs = SubjectKeys(keyring(), store), SubjectKeys(keyring("x", x=K2), store)
    encrypt(["mine"], [42], mine)
    sealed = encrypt(["theirs"], [42], theirs)
    assert mine.id_secret_id != theirs.id_secret_id and len(store.rows) == 4
    assert mine.subject_id("customer_id", "42") != theirs.subject_id("customer_id", "42")
    again = SubjectKeys(keyring("x", x=K2), store)
    assert again.subject_id("customer_id", "42") == theirs.subject_id("customer_id", "42")
    assert decrypt_array(sealed, again.keyring, CONTEXT, subject_keys=again).to_pylist() == ["theirs"]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"address": {"mode": "deterministic", "per_subject": "customer_id"}}, "randomized only"),
        ({"address": {"per_subject": "customer_id"}, "customer_id": "randomized"}, "stay in clear"),
    ],
)
def test_step_model_rejects_unusable_per_subject_settings(columns: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        EncryptStep.model_validate({"keyring_conn_id": "kr", "columns": columns})
