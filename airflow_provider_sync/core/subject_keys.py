"""Per-subject keys: crypto-shredding for the right to erasure (GDPR art. 17).

A column declared ``encrypt: {per_subject: customer_id}`` is encrypted, row by row, under a key of its own
for each data subject (each value of ``customer_id``). The subject keys are random 32-byte AES-256-GCM keys,
kept in a key table (``sync_subject_keys`` in the target database) *wrapped* by the keyring: sealed with
AES-256-GCM under a keyring key, bound to the subject id. Deleting a subject's row from the key table makes
every copy of that subject's values unreadable — backups, replicas, Kafka topics, staged files — because the
only key that opens them is gone.

A subject is never stored or logged by value. In the key table its id is an HMAC of (scope, value) under
an *id secret*: a random secret kept in the table itself (a row of scope ``#id-secret``), wrapped by the
keyring like the subject keys. It never changes, so subject ids stay valid across keyring rotations (a
rotation re-wraps the rows, see ``pipeline/subject_keys.py rewrap_subject_keys``), and without the keyring
no one can tell which id belongs to which value. Pipelines with different keyrings may share one key
table: each uses the id secret its keyring opens (the first by id), and makes one when none opens.

Envelope of a per-subject value::

    enc:v1:subj:<keyring key id that wrapped the subject key>:<subject id>:<base64url(nonce || ciphertext)>

This module is pure: the key table is reached through a :class:`SubjectKeyStore` (``pipeline/subject_keys.py``
implements it over a database).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from airflow_provider_sync.errors import KeyringError, TerminalError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from airflow_provider_sync.core.keyring import Keyring

SUBJECT_TOKEN = "subj"
SUBJECT_KEY_BYTES = 32
#: Scope and id prefix of the key table rows holding id secrets (never a 32-hex-digit subject id).
ID_SECRET_SCOPE = "#id-secret"
ID_SECRET_PREFIX = "id-secret-"
_NONCE = 12
_WRAP_LABEL = "airflow-provider-sync/v1/subject-key"


class SubjectKeyShreddedError(KeyringError):
    """A value was encrypted under a subject key that has been deleted: the subject was erased."""


@dataclass(frozen=True)
class StoredSubjectKey:
    """One row of the key table: the subject key sealed under keyring key ``kek_id``."""

    subject_id: str
    scope: str
    kek_id: str
    wrapped_key: str


class SubjectKeyStore(Protocol):
    """Where wrapped subject keys live (the ``sync_subject_keys`` table)."""

    @property
    def name(self) -> str:
        """The key table, for messages."""
        ...

    def fetch(self, subject_ids: Sequence[str]) -> dict[str, StoredSubjectKey]:
        """The stored keys among ``subject_ids`` (missing ids are absent from the result)."""
        ...

    def insert(self, keys: Sequence[StoredSubjectKey]) -> None:
        """Store new keys; a key another writer stored meanwhile for the same id is kept, not replaced."""
        ...

    def fetch_scope(self, scope: str) -> list[StoredSubjectKey]:
        """Every stored key of ``scope`` (used for the id secrets only)."""
        ...


def _wrap_aad(subject_id: str, scope: str) -> bytes:
    return f"{_WRAP_LABEL}\x00{scope}\x00{subject_id}".encode()


def wrap_subject_key(keyring: Keyring, scope: str, subject_id: str, key: bytes) -> StoredSubjectKey:
    """``key`` sealed under the keyring's primary key, bound to the subject id and scope."""
    nonce = os.urandom(_NONCE)
    sealed = keyring.gcm(keyring.primary_id).encrypt(nonce, key, _wrap_aad(subject_id, scope))
    wrapped = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
    return StoredSubjectKey(subject_id, scope, keyring.primary_id, wrapped)


def unwrap_subject_key(keyring: Keyring, stored: StoredSubjectKey) -> bytes:
    """The subject key; KeyringError naming the subject key id when the keyring cannot open it."""
    from cryptography.exceptions import InvalidTag

    try:
        payload = base64.urlsafe_b64decode(stored.wrapped_key.encode("ascii"))
        return keyring.gcm(stored.kek_id).decrypt(
            payload[:_NONCE], payload[_NONCE:], _wrap_aad(stored.subject_id, stored.scope)
        )
    except (InvalidTag, ValueError, binascii.Error):
        raise KeyringError(
            f"subject key {stored.subject_id!r} does not unwrap with keyring key {stored.kek_id!r}: the key "
            "table row was edited or another keyring is used"
        ) from None


def rewrap_subject_key(keyring: Keyring, stored: StoredSubjectKey) -> StoredSubjectKey | None:
    """``stored`` re-wrapped under the keyring's primary key (None when it already is): after a keyring
    rotation, so the old key can leave the keyring. The subject id, and every value, stay as they are."""
    if stored.kek_id == keyring.primary_id:
        return None
    return wrap_subject_key(keyring, stored.scope, stored.subject_id, unwrap_subject_key(keyring, stored))


def _hmac_id(secret: bytes, scope: str, value: str) -> str:
    import hashlib
    import hmac

    return hmac.new(secret, f"{scope}\x00{value}".encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class SubjectCipher:
    """The cipher of one subject: its key id in the key table and the keyring key that wrapped it."""

    subject_id: str
    kek_id: str
    gcm: AESGCM


class SubjectKeys:
    """Finds, creates and opens subject keys through a :class:`SubjectKeyStore`, caching opened keys."""

    def __init__(self, keyring: Keyring, store: SubjectKeyStore) -> None:
        self.keyring = keyring
        self.store = store
        self._ciphers: dict[str, SubjectCipher] = {}
        self._id_secret: bytes | None = None
        self.id_secret_id: str | None = None
        self.keys_created = 0

    def _opened(self, stored: StoredSubjectKey) -> SubjectCipher:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = unwrap_subject_key(self.keyring, stored)
        cipher = SubjectCipher(stored.subject_id, stored.kek_id, AESGCM(key))
        self._ciphers[stored.subject_id] = cipher
        return cipher

    def _open_id_secret(self) -> bytes | None:
        for stored in sorted(self.store.fetch_scope(ID_SECRET_SCOPE), key=lambda row: row.subject_id):
            try:
                secret = unwrap_subject_key(self.keyring, stored)
            except KeyringError:
                continue  # another keyring's id secret in a shared key table
            self.id_secret_id = stored.subject_id
            return secret
        return None

    def id_secret(self, *, create: bool = True) -> bytes | None:
        """The id secret this keyring opens in the key table, made and stored on first use (None when
        there is none and not ``create``)."""
        if self._id_secret is None:
            self._id_secret = self._open_id_secret()
            if self._id_secret is None and create:
                row_id = ID_SECRET_PREFIX + os.urandom(8).hex()
                fresh = os.urandom(SUBJECT_KEY_BYTES)
                self.store.insert([wrap_subject_key(self.keyring, ID_SECRET_SCOPE, row_id, fresh)])
                # Read again: of two made at the same moment, every writer picks the same (first) one.
                self._id_secret = self._open_id_secret()
                if self._id_secret is None:
                    raise TerminalError(f"the id secret just stored in {self.store.name} cannot be read back")
        return self._id_secret

    def subject_id(self, scope: str, value: str, *, create: bool = True) -> str | None:
        """The id of subject ``value`` of ``scope`` in this key table (None: the table has no id secret
        yet, so it holds no subject key at all, and ``create`` is false)."""
        secret = self.id_secret(create=create)
        return None if secret is None else _hmac_id(secret, scope, value)

    def ciphers_for(self, scope: str, values: Sequence[str | None]) -> list[SubjectCipher | None]:
        """The cipher of each value's subject (None for a NULL subject), creating missing subject keys."""
        secret = self.id_secret()
        if secret is None:  # id_secret() makes one when missing; this cannot happen
            raise TerminalError(f"no id secret in {self.store.name}")
        ids = {value: _hmac_id(secret, scope, value) for value in {v for v in values if v is not None}}
        wanted = sorted(set(ids.values()) - set(self._ciphers))
        found = self.store.fetch(wanted) if wanted else {}
        missing = sorted(set(wanted) - set(found))
        if missing:
            fresh = [wrap_subject_key(self.keyring, scope, i, os.urandom(SUBJECT_KEY_BYTES)) for i in missing]
            self.store.insert(fresh)
            found.update(self.store.fetch(missing))  # read back: a concurrent writer's key wins over ours
            self.keys_created += len(missing)
        for subject_id in wanted:
            if subject_id not in found:
                raise TerminalError(f"the subject key just stored in {self.store.name} cannot be read back")
            self._opened(found[subject_id])
        return [None if value is None else self._ciphers[ids[value]] for value in values]

    def cipher(self, subject_id: str) -> SubjectCipher:
        """The cipher of a subject id read from an envelope; SubjectKeyShreddedError when its key is gone."""
        cipher = self._ciphers.get(subject_id)
        if cipher is not None:
            return cipher
        stored = self.store.fetch([subject_id]).get(subject_id)
        if stored is None:
            raise SubjectKeyShreddedError(
                f"subject key {subject_id!r} is not in the key table {self.store.name}: the data subject was "
                "erased (crypto-shredded), so this value can no longer be decrypted by anyone"
            )
        return self._opened(stored)
