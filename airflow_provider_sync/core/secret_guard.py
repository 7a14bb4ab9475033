"""Refuse key material written into a pipeline file.

Keys and secrets must come from Airflow connections (or the secrets backend behind them). Step models run
two "before" validators over their raw YAML body: :func:`redact_inline_secrets` first replaces anything
that looks like a secret with :data:`REDACTED` (validation errors carry their input, and error reports
show it), then :func:`reject_inline_secrets` raises a message that says where the key belongs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

SECRET_FIELD_NAMES = frozenset(
    {"key", "keys", "secret", "salt", "password", "passphrase", "token", "private_key", "api_key",
     "key_material", "keyring", "pepper", "hmac_key", "encryption_key"}
)  # fmt: skip
REDACTED = "<removed: looked like a secret>"
_HEX_BLOB = re.compile(r"^(?:0x)?[0-9A-Fa-f]{32,}$")
_BASE64_BLOB = re.compile(r"^[A-Za-z0-9+/_-]{32,}={0,2}$")


def looks_like_key_material(text: str) -> bool:
    """True for long hex strings, and for long base64 strings that mix upper case, lower case and digits.

    Mixed classes keep ordinary long snake_case names from being mistaken for keys.
    """
    candidate = text.strip()
    if _HEX_BLOB.match(candidate):
        return True
    if not _BASE64_BLOB.match(candidate):
        return False
    return (
        any(c.isupper() for c in candidate)
        and any(c.islower() for c in candidate)
        and any(c.isdigit() for c in candidate)
    )


def _walk(value: Any, path: str, name_maps: frozenset[str]) -> Iterator[tuple[str, str, Any]]:
    """Yield (path, field name, value); keys of a mapping listed in ``name_maps`` are data, not fields."""
    if isinstance(value, dict):
        keys_are_data = path.rsplit(".", 1)[-1] in name_maps
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            yield child, "" if keys_are_data else str(key), item
            yield from _walk(item, child, name_maps)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]", name_maps)
            yield f"{path}[{index}]", "", item


def redact_inline_secrets(body: Any, name_maps: frozenset[str] = frozenset(), name: str = "") -> Any:
    """A copy of ``body`` with the values of secret-named fields and key-like strings replaced."""
    if name.lower() in SECRET_FIELD_NAMES:
        return REDACTED
    if isinstance(body, dict):
        keys_are_data = name in name_maps
        return {
            key: redact_inline_secrets(item, name_maps, "" if keys_are_data else str(key))
            for key, item in body.items()
        }
    if isinstance(body, list):
        return [redact_inline_secrets(item, name_maps) for item in body]
    if isinstance(body, str) and looks_like_key_material(body):
        return REDACTED
    return body


def reject_inline_secrets(body: Any, conn_field: str, name_maps: frozenset[str] = frozenset()) -> None:
    """Raise ValueError if ``body`` holds a secret-named field or a value that looks like key material.

    ``name_maps`` names mappings whose keys are column names (a column may well be called ``password``).
    """
    for path, name, value in _walk(body, "", name_maps):
        if name.lower() in SECRET_FIELD_NAMES:
            raise ValueError(
                f"{path!r}: keys and secrets must not be written in the pipeline file; store them in an "
                f"Airflow connection (or secrets backend) and reference it with {conn_field!r}"
            )
        if isinstance(value, str) and (value == REDACTED or looks_like_key_material(value)):
            raise ValueError(
                f"{path!r} holds a value that looks like key material (a long hex or base64 string); "
                f"store keys in an Airflow connection and reference it with {conn_field!r}"
            )
