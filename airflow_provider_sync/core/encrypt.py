"""Field encryption with key rotation (the ``encrypt`` step and the decrypt / re-encrypt helpers).

Envelope (text, so it fits any string column)::

    enc:v1:<mode>:<key id>:<base64url(payload)>
      mode gcm: payload = 12-byte random nonce || AES-256-GCM ciphertext and tag
      mode siv: payload = AES-SIV synthetic IV || ciphertext (deterministic)

    enc:v1:subj:<key id>:<subject id>:<base64url(12-byte nonce || AES-256-GCM ciphertext and tag)>
      a column encrypted ``per_subject``: under the row's subject key (``core/subject_keys.py``), which
      the keyring key ``<key id>`` wrapped; deleting that subject key crypto-shreds the value

The plaintext inside is one type byte (0 = UTF-8 text, 1 = raw bytes) followed by the value. The
associated data binds the envelope header and a *context*, by default ``"<table>.<column>"``: a value
moved to another column or table fails to decrypt instead of yielding someone else's data.

Usage::

    encryptor = Encryptor(step, keyring, table="sales.orders")
    encrypted = encryptor.encrypt(batch)
    clear = decrypt_batch(encrypted, keyring, encryptor.contexts)
    moved, info = reencrypt_batch(encrypted, keyring.with_primary("k2"), encryptor.contexts)

Values are encrypted in a tight loop per column with one ``os.urandom`` call per column and batch for
all GCM nonces. NULL stays NULL.

The envelope format and cipher plumbing live in :mod:`.envelope`; this module
applies them to arrays, batches and the ``encrypt`` step.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from airflow_provider_sync.core.envelope import (
    BYTES_TYPE,
    FORMAT_VERSION,
    MODE_TOKENS,
    NONCE_BYTES,
    URLSAFE,
    CiphertextError,
    Opener,
    field_context,
    plaintexts,
    seal,
    subject_associated_data,
)
from airflow_provider_sync.core.keyring import Keyring
from airflow_provider_sync.core.normalize import as_text
from airflow_provider_sync.core.subject_keys import SUBJECT_TOKEN
from airflow_provider_sync.errors import IncompatibleSchemaError, KeyringError

if TYPE_CHECKING:
    from airflow_provider_sync.config.steps.encrypt import EncryptionMode, EncryptStep
    from airflow_provider_sync.core.subject_keys import SubjectKeys


def encrypt_array(
    values: pa.Array, keyring: Keyring, context: str, mode: EncryptionMode = "randomized"
) -> pa.Array:
    """Encrypt every non-NULL value under the primary key; returns a string array of envelopes."""
    return seal(plaintexts(values), keyring, context, MODE_TOKENS[mode])


def encrypt_per_subject(
    values: pa.Array,
    subjects: pa.Array,
    keyring: Keyring,
    subject_keys: SubjectKeys,
    scope: str,
    context: str,
) -> pa.Array:
    """Encrypt each value under the key of its row's subject (``subjects``, the ``scope`` column); a row
    without a subject (NULL) is encrypted under the keyring's primary key like a randomized column."""
    plain = plaintexts(values)
    ciphers = subject_keys.ciphers_for(scope, as_text(subjects).to_pylist())
    # Only rows without a subject are sealed under the keyring (the others are None here).
    orphans = [value if cipher is None else None for value, cipher in zip(plain, ciphers, strict=True)]
    fallback = seal(orphans, keyring, context, "gcm").to_pylist()
    nonces = os.urandom(NONCE_BYTES * len(plain))
    out: list[str | None] = []
    for index, (value, cipher) in enumerate(zip(plain, ciphers, strict=True)):
        if value is None or cipher is None:
            out.append(None if value is None else fallback[index])
            continue
        nonce = nonces[index * NONCE_BYTES : (index + 1) * NONCE_BYTES]
        sealed = cipher.gcm.encrypt(nonce, value, subject_associated_data(cipher.subject_id, context))
        body = binascii.b2a_base64(nonce + sealed, newline=False).translate(URLSAFE).decode("ascii")
        out.append(f"enc:{FORMAT_VERSION}:{SUBJECT_TOKEN}:{cipher.kek_id}:{cipher.subject_id}:{body}")
    return pa.array(out, pa.string())


def decrypt_array(
    values: pa.Array,
    keyring: Keyring,
    context: str,
    *,
    as_binary: bool = False,
    subject_keys: SubjectKeys | None = None,
) -> pa.Array:
    """Decrypt envelopes made by :func:`encrypt_array` (or :func:`encrypt_per_subject`, given
    ``subject_keys``) with the same context; returns text (or bytes)."""
    opener = Opener(keyring, context, subject_keys)
    out: list[bytes | None] = []
    for row, text in enumerate(as_text(values).to_pylist()):
        if text is None:
            out.append(None)
            continue
        plain = opener.open(*opener.parse(text, row))
        if plain[:1] == BYTES_TYPE and not as_binary:
            raise CiphertextError(f"{context!r} holds encrypted bytes, not text; decrypt with as_binary=True")
        out.append(plain[1:])
    result = pa.array(out, pa.binary())
    return result if as_binary else result.cast(pa.string())


def reencrypt_array(values: pa.Array, keyring: Keyring, context: str) -> tuple[pa.Array, int, set[str]]:
    """Move values encrypted under older keys to the primary key, keeping each value's mode.

    Returns the new array, how many values moved, and the key ids they moved from. Values already under
    the primary key are left as they are.
    """
    opener = Opener(keyring, context)
    texts = as_text(values).to_pylist()
    by_mode: dict[str, tuple[list[int], list[bytes | None]]] = {"gcm": ([], []), "siv": ([], [])}
    old_ids: set[str] = set()
    for row, text in enumerate(texts):
        if text is None:
            continue
        token, key_id, payload = opener.parse(text, row)
        # A per-subject value stays under its subject key: rotating the keyring re-wraps subject keys.
        if token != SUBJECT_TOKEN and key_id != keyring.primary_id:
            rows, plain = by_mode[token]
            rows.append(row)
            plain.append(opener.open(token, key_id, payload))
            old_ids.add(key_id)
    moved = 0
    for token, (rows, plain) in by_mode.items():
        if rows:
            for row, sealed in zip(rows, seal(plain, keyring, context, token).to_pylist(), strict=True):
                texts[row] = sealed
            moved += len(rows)
    return pa.array(texts, pa.string()), moved, old_ids


def encrypt_value(
    value: str | bytes, keyring: Keyring, context: str, mode: EncryptionMode = "randomized"
) -> str:
    array = pa.array([value], pa.binary() if isinstance(value, bytes) else pa.string())
    return str(encrypt_array(array, keyring, context, mode)[0].as_py())


def decrypt_value(
    envelope: str,
    keyring: Keyring,
    context: str,
    *,
    as_binary: bool = False,
    subject_keys: SubjectKeys | None = None,
) -> Any:
    """Decrypt one envelope (for authorized users and support scripts); str, or bytes with as_binary."""
    values = pa.array([envelope], pa.string())
    return decrypt_array(values, keyring, context, as_binary=as_binary, subject_keys=subject_keys)[0].as_py()


def _check_columns(batch: pa.RecordBatch, columns: Iterable[str]) -> None:
    missing = sorted(set(columns) - set(batch.schema.names))
    if missing:
        raise IncompatibleSchemaError(
            f"column(s) {missing} to encrypt/decrypt are not in the data; "
            f"available columns: {batch.schema.names}"
        )


def _replace_columns(batch: pa.RecordBatch, new: Mapping[str, pa.Array]) -> pa.RecordBatch:
    arrays, fields = [], []
    for index, field in enumerate(batch.schema):
        values = new.get(field.name, batch.column(index))
        arrays.append(values)
        fields.append(field.with_type(values.type))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields, metadata=batch.schema.metadata))


def decrypt_batch(
    batch: pa.RecordBatch,
    keyring: Keyring,
    contexts: Mapping[str, str],
    *,
    as_binary: bool = False,
    subject_keys: SubjectKeys | None = None,
) -> pa.RecordBatch:
    """Decrypt the columns named in ``contexts`` (column -> context, e.g. ``Encryptor.contexts``)."""
    _check_columns(batch, contexts)
    return _replace_columns(
        batch,
        {
            name: decrypt_array(
                batch.column(name), keyring, ctx, as_binary=as_binary, subject_keys=subject_keys
            )
            for name, ctx in contexts.items()
        },
    )


def reencrypt_batch(
    batch: pa.RecordBatch, keyring: Keyring, contexts: Mapping[str, str]
) -> tuple[pa.RecordBatch, dict[str, Any]]:
    """Re-encrypt the named columns under ``keyring.primary_id``; returns the batch and manifest counts."""
    _check_columns(batch, contexts)
    new: dict[str, pa.Array] = {}
    moved_total = 0
    old_ids: set[str] = set()
    for name, context in contexts.items():
        new[name], moved, ids = reencrypt_array(batch.column(name), keyring, context)
        moved_total += moved
        old_ids |= ids
    info = {"values_reencrypted": moved_total, "from_key_ids": sorted(old_ids), "key_id": keyring.primary_id}
    return _replace_columns(batch, new), info


class Encryptor:
    """Applies an :class:`EncryptStep` to the batches of one table."""

    def __init__(
        self, step: EncryptStep, keyring: Keyring, table: str, *, subject_keys: SubjectKeys | None = None
    ) -> None:
        self.step = step
        self.keyring = keyring
        self.subject_keys = subject_keys
        self.per_subject: dict[str, str] = {
            name: spec.per_subject for name, spec in step.columns.items() if spec.per_subject
        }

        bound_table = step.associated_table or table
        self.contexts: dict[str, str] = {
            name: spec.context or field_context(bound_table, name) for name, spec in step.columns.items()
        }
        self.values_encrypted = 0
        self.rows = 0

    def encrypt(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        _check_columns(batch, [*self.step.columns, *self.per_subject.values()])
        self.rows += batch.num_rows
        new = {}
        for name, spec in self.step.columns.items():
            values = batch.column(name)
            scope = self.per_subject.get(name)
            if scope is not None:
                if self.subject_keys is None:
                    # Checked here, not in __init__: contexts alone (quarantine protection) need no keys.
                    raise KeyringError(
                        f"column {name!r} is encrypted per subject {scope!r}, which needs the subject key "
                        "table: build the Encryptor with subject_keys (see pipeline.subject_keys)"
                    )
                # Subjects are read from the batch as it came in, before any column of it was encrypted.
                subjects = batch.column(scope)
                context = self.contexts[name]
                new[name] = encrypt_per_subject(
                    values, subjects, self.keyring, self.subject_keys, scope, context
                )
            else:
                new[name] = encrypt_array(values, self.keyring, self.contexts[name], spec.mode)
            self.values_encrypted += len(values) - values.null_count
        return _replace_columns(batch, new)

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """Encrypted columns become strings without the source's declared type (an envelope fits no
        ``varchar(n)`` and is no JSON); the others keep their types."""
        from airflow_provider_sync.core.declared import with_declared

        fields = [
            with_declared(f.with_type(pa.string()), None) if f.name in self.step.columns else f
            for f in schema
        ]
        return pa.schema(fields, metadata=schema.metadata)

    def metadata(self) -> dict[str, Any]:
        """Columns, modes and key id used, and how many values were encrypted (never keys or values)."""
        return {
            "rows_in": self.rows,
            "rows_out": self.rows,
            "columns_encrypted": {name: spec.mode for name, spec in self.step.columns.items()},
            "key_ids": [self.keyring.primary_id],
            "values_encrypted": self.values_encrypted,
            **self._subject_metadata(),
        }

    def _subject_metadata(self) -> dict[str, Any]:
        if not self.per_subject:
            return {}
        created = self.subject_keys.keys_created if self.subject_keys is not None else 0
        return {"columns_per_subject": dict(self.per_subject), "subject_keys_created": created}


__all__ = [
    "FORMAT_VERSION",
    "MODE_TOKENS",
    "NONCE_BYTES",
    "CiphertextError",
    "Encryptor",
    "decrypt_array",
    "decrypt_batch",
    "decrypt_value",
    "encrypt_array",
    "encrypt_per_subject",
    "encrypt_value",
    "field_context",
    "reencrypt_array",
    "reencrypt_batch",
]
