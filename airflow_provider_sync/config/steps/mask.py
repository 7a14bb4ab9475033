"""``mask`` step: replace sensitive values so that the target never sees them in clear.

Example::

    - mask:
        secret_conn_id: pii_mask_secret      # its password is the HMAC secret for hash/tokenize
        columns:
          email: email                       # j***@example.com
          phone: {strategy: phone, keep_last: 4}
          card_number: {strategy: partial, keep_first: 0, keep_last: 4}
          ssn: redact
          notes: null
          customer_id: tokenize              # tok_<32 hex>, same input -> same token everywhere
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from airflow_provider_sync.config.identifiers import ConnectionId, Identifier
from airflow_provider_sync.config.shorthand import expand_columns
from airflow_provider_sync.config.steps import StepSpec, register_step
from airflow_provider_sync.core.secret_guard import redact_inline_secrets, reject_inline_secrets
from airflow_provider_sync.core.vocabulary import SECRET_STRATEGIES

_STRICT = ConfigDict(extra="forbid")


class RedactMask(BaseModel):
    """Replace every non-NULL value with the text [REDACTED] (text columns)."""

    model_config = _STRICT
    strategy: Literal["redact"]


class ReplaceMask(BaseModel):
    """Replace every non-NULL value with a fixed value of the column's type."""

    model_config = _STRICT
    strategy: Literal["replace"]
    value: str | int | float | bool = Field(description="The value written instead.")


class NullMask(BaseModel):
    """Replace every value with NULL (the column keeps its type)."""

    model_config = _STRICT
    strategy: Literal["null"]


class PartialMask(BaseModel):
    """Keep the first/last characters, mask every other letter or digit; length and separators stay."""

    model_config = _STRICT
    strategy: Literal["partial"]
    keep_first: int = Field(0, ge=0, le=64, description="Characters kept at the start.")
    keep_last: int = Field(4, ge=0, le=64, description="Characters kept at the end.")
    mask_char: str = Field("*", min_length=1, max_length=1, description="Character written instead.")


class EmailMask(BaseModel):
    """Keep the first character of the local part and the domain: ``j***@example.com``."""

    model_config = _STRICT
    strategy: Literal["email"]


class PhoneMask(BaseModel):
    """Keep the last N digits, mask the other digits; ``+``, spaces and separators stay."""

    model_config = _STRICT
    strategy: Literal["phone"]
    keep_last: int = Field(4, ge=0, le=8, description="Digits kept at the end.")


class HashMask(BaseModel):
    """HMAC-SHA-256 of the value with the secret, as 64 hex characters (joinable, not reversible)."""

    model_config = _STRICT
    strategy: Literal["hash"]


class TokenizeMask(BaseModel):
    """Deterministic pseudonym ``<prefix><32 hex characters>``: same input and secret, same token.

    Tokens are keyed HMACs, equal in every table and run, so joins and referential integrity survive.
    """

    model_config = _STRICT
    strategy: Literal["tokenize", "pseudonym"]
    prefix: str = Field("tok_", pattern=r"^[A-Za-z0-9_:-]{0,16}$", description="Text put before the token.")


MaskRule = Annotated[
    RedactMask | ReplaceMask | NullMask | PartialMask | EmailMask | PhoneMask | HashMask | TokenizeMask,
    Field(discriminator="strategy"),
]
STRATEGIES = ("redact", "replace", "null", "partial", "email", "phone", "hash", "tokenize", "pseudonym")


class MaskStep(BaseModel):
    """Mask columns in flight. A column maps to a strategy name or to {strategy: ..., options}."""

    model_config = _STRICT

    columns: dict[Identifier, MaskRule] = Field(
        min_length=1, description=f"Strategy per column; one of {', '.join(STRATEGIES)}."
    )
    secret_conn_id: ConnectionId | None = Field(
        None,
        description="Airflow connection whose password is the secret for hash and tokenize (use 32+ random "
        "characters; keep it stable, or tokens change).",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        reject_inline_secrets(data, "secret_conn_id", name_maps=frozenset({"columns"}))
        return expand_columns(data, "strategy", {"strategy": "null"})

    # Defined last so it runs first: secrets are gone from the input that errors report.
    @model_validator(mode="before")
    @classmethod
    def _redact(cls, data: Any) -> Any:
        return redact_inline_secrets(data, frozenset({"columns"}))

    @model_validator(mode="after")
    def _secret_when_needed(self) -> MaskStep:
        needing = sorted(name for name, rule in self.columns.items() if rule.strategy in SECRET_STRATEGIES)
        if needing and not self.secret_conn_id:
            raise ValueError(
                f"columns {needing} use hash/tokenize, which need a secret: set secret_conn_id to an Airflow "
                "connection whose password holds it"
            )
        return self


register_step(
    StepSpec(
        name="mask",
        model=MaskStep,
        operator="airflow_provider_sync.operators.steps.MaskOperator",
        summary="Mask sensitive columns (redact, replace, null, partial, email, phone, hash, tokenize).",
    )
)
