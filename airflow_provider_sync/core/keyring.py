"""Encryption keys: a primary key id for new data plus older keys that still decrypt.

A keyring is a JSON document kept in an Airflow connection (its password, or the ``keyring`` field of its
extra), never in a pipeline file::

    {"primary": "k2", "keys": {"k1": "<base64 of 32 or 64 random bytes>", "k2": "<base64 ...>"}}

Key ids are 1-64 characters of letters, digits, ``_``, ``.`` and ``-``. Each key is master material: the
AES-256-GCM key and the AES-SIV key are derived from it with HKDF-SHA-256 under distinct labels, so one
key serves both modes without the two ever sharing key bytes. Create a new key with
``python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"``; to rotate, add it
under a new id, make it primary, and keep the old one until a re-encrypt run has moved every value.
Randomized (GCM) encryption uses random 96-bit nonces, so rotate well before one key has encrypted about
four billion (2**32) values.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import KeyringError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV

KEY_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
_KEY_ID = re.compile(KEY_ID_PATTERN)
KEY_SIZES = (32, 64)
_GCM_LABEL = b"airflow-provider-sync/v1/aes-256-gcm"
_SIV_LABEL = b"airflow-provider-sync/v1/aes-256-siv"
_SUBJECT_ID_LABEL = b"airflow-provider-sync/v1/subject-id"


def _derive(material: bytes, label: bytes, length: int) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label).derive(material)


class Keyring:
    """Keys by id and the id of the primary key. Key bytes never appear in repr, errors or logs."""

    def __init__(self, keys: Mapping[str, bytes], primary: str) -> None:
        if not keys:
            raise KeyringError('the keyring holds no keys; add at least one under "keys"')
        for key_id, material in keys.items():
            if not _KEY_ID.match(key_id):
                raise KeyringError(
                    f"key id {key_id!r} is not valid: use 1-64 letters, digits, '_', '.' or '-'"
                )
            if len(material) not in KEY_SIZES:
                raise KeyringError(
                    f"key {key_id!r} is {len(material)} bytes long; keys must be 32 or 64 random bytes"
                )
        if primary not in keys:
            raise KeyringError(
                f"primary key id {primary!r} is not in the keyring (key ids: {sorted(keys)}); "
                'add that key or set "primary" to one of the ids'
            )
        self._keys = dict(keys)
        self.primary_id = primary
        self._gcm: dict[str, AESGCM] = {}
        self._siv: dict[str, AESSIV] = {}

    def __repr__(self) -> str:
        return f"Keyring(primary={self.primary_id!r}, key_ids={self.key_ids!r})"

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "the keyring connection") -> Keyring:
        """Parse the JSON document described in the module docs; ``source`` names where it came from."""
        try:
            document = json.loads(text)
        except (ValueError, TypeError):
            raise KeyringError(
                f"{source} does not hold a JSON keyring; expected "
                '{"primary": "<key id>", "keys": {"<key id>": "<base64 key>"}}'
            ) from None
        return cls.from_document(document, source)

    @classmethod
    def from_document(cls, document: Any, source: str = "the keyring connection") -> Keyring:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), dict):
            raise KeyringError(f'{source}: the keyring must be a JSON object with a "keys" object')
        primary = document.get("primary")
        if not isinstance(primary, str):
            raise KeyringError(f'{source}: the keyring needs "primary", the id of the key for new data')
        keys: dict[str, bytes] = {}
        for key_id, encoded in document["keys"].items():
            if not isinstance(encoded, str):
                raise KeyringError(f"{source}: key {key_id!r} must be a base64 string")
            try:
                keys[key_id] = base64.b64decode(encoded.replace("-", "+").replace("_", "/"), validate=True)
            except (binascii.Error, ValueError):
                raise KeyringError(f"{source}: key {key_id!r} is not valid base64") from None
        return cls(keys, primary)

    @classmethod
    def from_connection_fields(
        cls, password: str | None, extra: str | Mapping[str, Any] | None, conn_id: str
    ) -> Keyring:
        """The keyring stored in a connection: its password, or else the ``keyring`` field of its extra."""
        source = f"connection {conn_id!r}"
        if password and password.strip():
            return cls.from_json(password, source)
        extra_document: Any = extra
        if isinstance(extra, str) and extra.strip():
            try:
                extra_document = json.loads(extra)
            except ValueError:
                raise KeyringError(f"{source}: the extra field is not valid JSON") from None
        if isinstance(extra_document, Mapping) and "keyring" in extra_document:
            keyring = extra_document["keyring"]
            return (
                cls.from_json(keyring, source)
                if isinstance(keyring, str)
                else cls.from_document(keyring, source)
            )
        raise KeyringError(
            f"{source} holds no keyring: put the keyring JSON in its password, or in its extra as "
            '{"keyring": {...}}'
        )

    def with_primary(self, key_id: str) -> Keyring:
        """The same keys with another primary (for rotation)."""
        return Keyring(self._keys, key_id)

    def _material(self, key_id: str) -> bytes:
        try:
            return self._keys[key_id]
        except KeyError:
            raise KeyringError(
                f"key id {key_id!r} is not in the keyring (key ids: {list(self.key_ids)}); the value was "
                "encrypted with a key that has since been removed, or the wrong keyring connection is used"
            ) from None

    def gcm(self, key_id: str) -> AESGCM:
        """The AES-256-GCM cipher for ``key_id``; KeyringError naming the id when it is missing."""
        cipher = self._gcm.get(key_id)
        if cipher is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            cipher = self._gcm[key_id] = AESGCM(_derive(self._material(key_id), _GCM_LABEL, 32))
        return cipher

    def subject_id(self, key_id: str, scope: str, value: str) -> str:
        """A keyed identifier of a data subject (HMAC-SHA-256 under a key derived from ``key_id``, first
        128 bits in hex): names the subject in the audit trail of an erasure without its value. Without the
        keyring it cannot be computed or reversed. (The key table has its own id secret, which rotations
        do not change: see ``core/subject_keys.py``.)"""
        import hashlib
        import hmac

        secret = _derive(self._material(key_id), _SUBJECT_ID_LABEL, 32)
        message = f"{scope}\x00{value}".encode()
        return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]

    def siv(self, key_id: str) -> AESSIV:
        """The AES-SIV (512-bit key, AES-256 strength) cipher for ``key_id``."""
        cipher = self._siv.get(key_id)
        if cipher is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESSIV

            cipher = self._siv[key_id] = AESSIV(_derive(self._material(key_id), _SIV_LABEL, 64))
        return cipher


def generate_keyring_json(key_ids: tuple[str, ...] = ("k1",), primary: str | None = None) -> str:
    """A new keyring document with fresh random 32-byte keys, to paste into a connection."""
    keys = {key_id: base64.b64encode(os.urandom(32)).decode() for key_id in key_ids}
    return json.dumps({"primary": primary or key_ids[-1], "keys": keys})
