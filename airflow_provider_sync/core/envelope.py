"""The ``enc:v1`` envelope of field encryption: its header and associated data, sealing plaintexts under
the keyring's primary key, and parsing and opening envelopes (one cached cipher per mode and key id).

Split from :mod:`.encrypt`: this is the wire format and the cipher plumbing; :mod:`.encrypt`
applies it to arrays, batches and the ``encrypt`` step, and re-exports the public names. The format
itself is described in :mod:`.encrypt`.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa

from airflow_provider_sync.core.keyring import Keyring
from airflow_provider_sync.core.normalize import as_text
from airflow_provider_sync.core.subject_keys import SUBJECT_TOKEN
from airflow_provider_sync.errors import KeyringError, TerminalError

if TYPE_CHECKING:
    from airflow_provider_sync.core.subject_keys import SubjectKeys

FORMAT_VERSION = "v1"
MODE_TOKENS: dict[str, str] = {"randomized": "gcm", "deterministic": "siv"}
NONCE_BYTES = 12
TEXT_TYPE, BYTES_TYPE = b"\x00", b"\x01"
URLSAFE = bytes.maketrans(b"+/", b"-_")


class CiphertextError(TerminalError):
    """A value is not an envelope this version can read (not encrypted, truncated or edited)."""


def field_context(table: str, column: str) -> str:
    """The default associated-data context of a column: ``"<table>.<column>"``."""
    return f"{table}.{column}"


def _associated_data(token: str, key_id: str, context: str) -> bytes:
    return f"enc:{FORMAT_VERSION}:{token}:{key_id}\x00{context}".encode()


def subject_associated_data(subject_id: str, context: str) -> bytes:
    # Bound to the subject id, not to the wrapping key: re-wrapping subject keys leaves values valid.
    return f"enc:{FORMAT_VERSION}:{SUBJECT_TOKEN}:{subject_id}\x00{context}".encode()


def plaintexts(values: pa.Array) -> list[bytes | None]:
    """Each value as type byte + bytes; binary stays raw, everything else is encoded as UTF-8 text."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type):
        return [None if v is None else BYTES_TYPE + v for v in values.to_pylist()]
    raw = as_text(values).cast(pa.binary()).to_pylist()
    return [None if v is None else TEXT_TYPE + v for v in raw]


def seal(plain: list[bytes | None], keyring: Keyring, context: str, token: str) -> pa.Array:
    key_id = keyring.primary_id
    header = f"enc:{FORMAT_VERSION}:{token}:{key_id}:".encode()
    aad = _associated_data(token, key_id, context)
    b2a = binascii.b2a_base64
    out: list[bytes | None] = []
    append = out.append
    if token == "gcm":
        encrypt = keyring.gcm(key_id).encrypt
        nonces = os.urandom(NONCE_BYTES * len(plain))
        for index, value in enumerate(plain):
            if value is None:
                append(None)
                continue
            start = index * NONCE_BYTES
            nonce = nonces[start : start + NONCE_BYTES]
            append(header + b2a(nonce + encrypt(nonce, value, aad), newline=False))
    else:
        siv_encrypt = keyring.siv(key_id).encrypt
        associated = [aad]
        for value in plain:
            append(None if value is None else header + b2a(siv_encrypt(value, associated), newline=False))
    # base64 -> base64url over the column's whole data buffer in one call; the header holds neither '+'
    # nor '/', and everything is ASCII, so the bytes are valid UTF-8 as they are.
    binary = pa.array(out, pa.binary())
    validity, offsets, data = binary.buffers()
    urlsafe = pa.py_buffer(data.to_pybytes().translate(URLSAFE)) if data is not None else data
    return pa.Array.from_buffers(pa.string(), len(binary), [validity, offsets, urlsafe], binary.null_count)


class Opener:
    """Decrypts envelopes of one context, caching one cipher per (mode, key id)."""

    def __init__(self, keyring: Keyring, context: str, subject_keys: SubjectKeys | None = None) -> None:
        self.keyring = keyring
        self.context = context
        self.subject_keys = subject_keys
        self._ciphers: dict[tuple[str, str], Callable[[bytes], bytes]] = {}

    def parse(self, text: str, row: int) -> tuple[str, str, bytes]:
        """(mode token, key id, payload); for a per-subject envelope the key id is the subject id."""
        parts = text.split(":", 4)
        if len(parts) == 5 and parts[2] == SUBJECT_TOKEN:
            # enc:v1:subj:<wrapping key id>:<subject id>:<payload>: the subject key opens it.
            subject_id, _, body = parts[4].partition(":")
            parts = [*parts[:3], subject_id, body] if body else []
        if (
            len(parts) != 5
            or parts[0] != "enc"
            or parts[1] != FORMAT_VERSION
            or parts[2] not in ("gcm", "siv", SUBJECT_TOKEN)
        ):
            raise CiphertextError(
                f"row {row} of {self.context!r} is not an encrypted value (expected enc:{FORMAT_VERSION}:"
                "gcm|siv:<key id>:<base64url> or enc:v1:subj:<key id>:<subject id>:<base64url>); was the "
                "column encrypted?"
            )
        try:
            payload = binascii.a2b_base64(parts[4].replace("-", "+").replace("_", "/"), strict_mode=True)
        except (binascii.Error, ValueError):
            raise CiphertextError(
                f"row {row} of {self.context!r}: the ciphertext is not valid base64url"
            ) from None
        return parts[2], parts[3], payload

    def _cipher(self, token: str, key_id: str) -> Callable[[bytes], bytes]:
        cipher = self._ciphers.get((token, key_id))
        if cipher is None and token == SUBJECT_TOKEN:
            cipher = self._subject_cipher(key_id)
        if cipher is None:
            aad = _associated_data(token, key_id, self.context)
            if token == "gcm":
                gcm = self.keyring.gcm(key_id)

                def cipher(payload: bytes) -> bytes:
                    return gcm.decrypt(payload[:NONCE_BYTES], payload[NONCE_BYTES:], aad)
            else:
                siv, associated = self.keyring.siv(key_id), [aad]

                def cipher(payload: bytes) -> bytes:
                    return siv.decrypt(payload, associated)

            self._ciphers[(token, key_id)] = cipher
        return cipher

    def _subject_cipher(self, subject_id: str) -> Callable[[bytes], bytes]:
        if self.subject_keys is None:
            raise KeyringError(
                f"a value of {self.context!r} is encrypted under the per-subject key {subject_id!r}; "
                "decrypting it needs the subject key table too (pass subject_keys, or --conn-id of the "
                "database holding sync_subject_keys)"
            )
        gcm = self.subject_keys.cipher(subject_id).gcm  # SubjectKeyShreddedError once it was erased
        aad = subject_associated_data(subject_id, self.context)

        def cipher(payload: bytes) -> bytes:
            return gcm.decrypt(payload[:NONCE_BYTES], payload[NONCE_BYTES:], aad)

        self._ciphers[(SUBJECT_TOKEN, subject_id)] = cipher
        return cipher

    def open(self, token: str, key_id: str, payload: bytes) -> bytes:
        """The plaintext with its type byte; KeyringError naming the key id when it does not fit."""
        from cryptography.exceptions import InvalidTag

        try:
            return self._cipher(token, key_id)(payload)
        except (InvalidTag, ValueError):
            raise KeyringError(
                f"a value of {self.context!r} does not decrypt with key {key_id!r}: the key with that id is "
                "not the one it was encrypted with, or the value was encrypted for another table/column "
                "(context)"
            ) from None


__all__ = [
    "BYTES_TYPE",
    "FORMAT_VERSION",
    "MODE_TOKENS",
    "NONCE_BYTES",
    "TEXT_TYPE",
    "URLSAFE",
    "CiphertextError",
    "Opener",
    "field_context",
    "plaintexts",
    "seal",
    "subject_associated_data",
]
