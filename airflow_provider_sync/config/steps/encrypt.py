"""``encrypt`` step: encrypt columns with keys from a keyring connection.

Example::

    - encrypt:
        keyring_conn_id: pii_keyring
        columns:
          ssn: randomized                    # AES-256-GCM, random nonce (default)
          email: deterministic               # AES-SIV: equal inputs give equal ciphertexts (joinable)
          customer_email: {mode: deterministic, context: crm.email}

Values become text envelopes ``enc:v1:<gcm|siv>:<key id>:<base64url>``. Each ciphertext is bound to its
table and column (or to ``context``), so a value copied to another column does not decrypt.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from airflow_provider_sync.config.identifiers import ConnectionId, Identifier, QualifiedName
from airflow_provider_sync.config.shorthand import expand_columns
from airflow_provider_sync.config.steps import StepSpec, register_step
from airflow_provider_sync.core.secret_guard import redact_inline_secrets, reject_inline_secrets

EncryptionMode = Literal["randomized", "deterministic"]


class ColumnEncryption(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: EncryptionMode = Field(
        "randomized",
        description="randomized: AES-256-GCM with a random nonce (equal values give different ciphertexts). "
        "deterministic: AES-SIV (equal values give equal ciphertexts, so the column stays joinable/unique).",
    )
    context: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_ $#.:-]{1,300}$",
        description="Associated-data label bound into each ciphertext; defaults to '<table>.<column>'. Give "
        "two columns the same context (and deterministic mode) to make their ciphertexts comparable.",
    )


class EncryptStep(BaseModel):
    """Encrypt columns in flight; decrypt later with the same keyring and context."""

    model_config = ConfigDict(extra="forbid")

    keyring_conn_id: ConnectionId = Field(
        description="Airflow connection whose password (or extra 'keyring') holds the keyring JSON: "
        '{"primary": "k2", "keys": {"k1": "<base64 32|64 bytes>", "k2": "..."}}.'
    )
    columns: dict[Identifier, ColumnEncryption] = Field(
        min_length=1, description="Columns to encrypt: a mode name, or {mode, context}."
    )
    associated_table: QualifiedName | None = Field(
        None,
        description="Table name bound into ciphertexts; defaults to the target table. Decryption must use "
        "the same name.",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        reject_inline_secrets(data, "keyring_conn_id", name_maps=frozenset({"columns"}))
        return expand_columns(data, "mode", {})

    # Defined last so it runs first: secrets are gone from the input that errors report.
    @model_validator(mode="before")
    @classmethod
    def _redact(cls, data: Any) -> Any:
        return redact_inline_secrets(data, frozenset({"columns"}))


register_step(
    StepSpec(
        name="encrypt",
        model=EncryptStep,
        operator="airflow_provider_sync.operators.steps.EncryptOperator",
        summary="Encrypt columns with AES-256-GCM or deterministic AES-SIV; keys from a keyring connection.",
    )
)
