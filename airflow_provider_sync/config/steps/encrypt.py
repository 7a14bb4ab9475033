"""``encrypt`` step: encrypt columns with keys from a keyring connection.

Example::

    - encrypt:
        keyring_conn_id: pii_keyring
        columns:
          ssn: randomized                    # AES-256-GCM, random nonce (default)
          email: deterministic               # AES-SIV: equal inputs give equal ciphertexts (joinable)
          customer_email: {mode: deterministic, context: crm.email}
          address: {per_subject: customer_id}  # crypto-shredding: one key per customer (GDPR art. 17)

Values become text envelopes ``enc:v1:<gcm|siv>:<key id>:<base64url>``. Each ciphertext is bound to its
table and column (or to ``context``), so a value copied to another column does not decrypt.

``per_subject: <column>`` encrypts each row's value under a key of its own for the row's data subject (the
value of that column), kept wrapped by the keyring in the ``sync_subject_keys`` table of the target
database. ``airflow-sync forget`` deletes the subject's key, which makes every copy of those values
unreadable. Envelopes become ``enc:v1:subj:<key id>:<subject id>:<base64url>``.
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
    per_subject: Identifier | None = Field(
        None,
        description="Column naming the row's data subject (e.g. customer_id): the value is encrypted under "
        "that subject's own key (kept wrapped by the keyring in the sync_subject_keys table of the target "
        "database), so erasing the subject (airflow-sync forget) deletes the key and every copy of the "
        "value becomes unreadable. Randomized mode only; rows whose subject is NULL use the keyring.",
    )

    @model_validator(mode="after")
    def _per_subject_randomized(self) -> ColumnEncryption:
        if self.per_subject is not None and self.mode != "randomized":
            raise ValueError(
                f"per_subject ({self.per_subject!r}) works with mode randomized only: a deterministic "
                "ciphertext under a per-subject key is no longer comparable across subjects; drop mode or "
                "per_subject"
            )
        return self


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

    @model_validator(mode="after")
    def _subject_columns_in_clear(self) -> EncryptStep:
        # Erasure finds a subject's rows by the subject column's value: it must stay readable.
        for name, spec in self.columns.items():
            if spec.per_subject is not None and spec.per_subject in self.columns:
                raise ValueError(
                    f"column {name!r} is encrypted per subject {spec.per_subject!r}, but "
                    f"{spec.per_subject!r} is itself encrypted by this step; the subject column must "
                    "stay in clear so its rows can be found and erased"
                )
        return self

    @property
    def per_subject_columns(self) -> dict[str, str]:
        """Encrypted column -> its subject column, for the columns encrypted per subject."""
        return {name: spec.per_subject for name, spec in self.columns.items() if spec.per_subject}

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
