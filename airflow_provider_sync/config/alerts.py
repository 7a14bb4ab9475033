"""YAML models of the ``alerts:`` section: who hears about failures, retries, successes and late runs.

Each notifier is a one-key mapping naming its kind::

    alerts:
      on_failure:
        - log: {level: error}
        - email: {to: [data-team@example.com], conn_id: smtp_default}
        - webhook: {conn_id: team_chat, format: slack}
      deadline: {after: 45m, from: queued, notify: [{webhook: {conn_id: team_chat}}]}

Webhook addresses are read only from an Airflow connection, never written in YAML: they usually embed a
token that grants posting rights.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from airflow_provider_sync.config.base import StrictModel
from airflow_provider_sync.config.identifiers import ConnectionId
from airflow_provider_sync.config.types import Duration

NOTIFIER_KINDS = ("log", "email", "webhook")
_NOTIFIER_HELP = (
    "each notifier is a mapping with exactly one key: log, email or webhook "
    "(for example `- log: {level: warning}` or `- webhook: {conn_id: my_webhook}`)"
)
_INLINE_ADDRESS_KEYS = frozenset({"url", "host", "endpoint", "webhook_url"})
_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _check_email(value: str) -> str:
    if not _EMAIL_SHAPE.match(value):
        raise ValueError(f"{value!r} is not an e-mail address (expected name@domain.tld)")
    return value


EmailAddress = Annotated[
    str, AfterValidator(_check_email), WithJsonSchema({"type": "string", "format": "email"})
]


class LogNotifierSettings(StrictModel):
    """Write the alert to the Airflow log of the task (or of the component running the callback)."""

    level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        default="warning", description="Log level of the alert line."
    )


class EmailNotifierSettings(StrictModel):
    """Send the alert by e-mail through an Airflow SMTP connection."""

    to: list[EmailAddress] = Field(min_length=1, description="Recipients' addresses.")
    conn_id: ConnectionId = Field(
        default="smtp_default", description="Airflow SMTP connection (host, port, login)."
    )
    from_email: EmailAddress | None = Field(
        default=None, description="Sender address (default: the connection's `from_email` extra)."
    )

    @field_validator("to", mode="before")
    @classmethod
    def _one_address_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class WebhookNotifierSettings(StrictModel):
    """POST the alert as JSON to an address read from an Airflow connection.

    The connection's host is either a full URL (``https://hooks.example.com/services/T0/B0/XYZ``) or a host
    name completed by its schema (``http``/``https``, default https), port and the ``endpoint`` extra;
    a ``headers`` extra (a JSON object) is sent with the request, and login/password as basic auth.
    """

    conn_id: ConnectionId = Field(
        description="Airflow connection holding the webhook address and any credentials."
    )
    format: Literal["json", "slack"] = Field(
        default="json",
        description="json: every alert field as a JSON object (plus a `text` summary); "
        'slack: `{"text": ...}` as Slack, Mattermost and Teams incoming webhooks expect.',
    )
    timeout: Duration = Field(
        default=timedelta(seconds=10), description="Give up on the request after this long."
    )

    inline_address: SkipJsonSchema[list[str] | None] = Field(default=None, exclude=True, repr=False)
    """Set only while validating, to report inline address keys without echoing their values."""

    @model_validator(mode="before")
    @classmethod
    def _hide_inline_address(cls, value: Any) -> Any:
        # The values of these keys are usually secret URLs: they are dropped before any error could show
        # them, and only the key names are reported (by the `inline_address` check below).
        if isinstance(value, dict):
            inline = sorted(_INLINE_ADDRESS_KEYS & set(value))
            if inline:
                kept = {key: item for key, item in value.items() if key not in _INLINE_ADDRESS_KEYS}
                return {**kept, "inline_address": inline}
        return value

    @field_validator("inline_address")
    @classmethod
    def _no_inline_address(cls, value: list[str] | None) -> list[str] | None:
        if value:
            raise ValueError(
                f"a webhook address is read only from an Airflow connection, never from YAML (it usually "
                f"contains a token): remove {value!r}, create a connection holding the URL and set "
                "`conn_id` to its id"
            )
        return value


NotifierSettings = LogNotifierSettings | EmailNotifierSettings | WebhookNotifierSettings


def _one_key_or_bare_log(schema: dict[str, Any]) -> None:
    # Tell editors what the validator enforces: exactly one key, or the bare string `log`.
    entry = {**schema, "minProperties": 1, "maxProperties": 1}
    schema.clear()
    schema["anyOf"] = [entry, {"const": "log", "type": "string"}]


class NotifierConfig(StrictModel):
    """One notifier entry: ``{log: ...}``, ``{email: ...}`` or ``{webhook: ...}`` (exactly one key)."""

    model_config = ConfigDict(json_schema_extra=_one_key_or_bare_log)

    log: LogNotifierSettings | None = None
    email: EmailNotifierSettings | None = None
    webhook: WebhookNotifierSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _exactly_one_kind(cls, value: Any) -> Any:
        if value == "log":
            # `- log` alone is the natural way to ask for a notifier with default settings.
            return {"log": {}}
        if isinstance(value, NotifierConfig):
            return value
        if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in NOTIFIER_KINDS:
            raise ValueError(_NOTIFIER_HELP)
        if value.get("log", "") is None:
            return {"log": {}}
        return value

    @property
    def kind(self) -> str:
        return next(name for name in NOTIFIER_KINDS if getattr(self, name) is not None)

    @property
    def settings(self) -> NotifierSettings:
        settings: NotifierSettings = getattr(self, self.kind)
        return settings


class DeadlineConfig(StrictModel):
    """Alert when a run has not finished this long after it was queued (Airflow Deadline Alerts).

    Deadlines are checked by the scheduler and their notifiers run in the triggerer, so both must run.
    """

    after: Duration = Field(description="How long a run may take, e.g. 45m or 2h.")
    from_: Literal["queued", "logical_date"] = Field(
        default="queued",
        alias="from",
        description="queued: count from when the run was queued (works for every run); logical_date: "
        "count from the run's logical date (scheduled runs only: manual runs without a logical date "
        "get no deadline).",
    )
    notify: list[NotifierConfig] = Field(min_length=1, description="Notifiers to call when a run is late.")

    @field_validator("after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("deadline 'after' must be longer than zero, e.g. 45m")
        return value


class AlertsConfig(StrictModel):
    """Notifications on task failure and retry, run success, and late runs."""

    on_failure: list[NotifierConfig] = Field(
        default_factory=list,
        description="Called for every failed task (with the error), and once for a run that fails "
        "without a failed task (for example a run timeout).",
    )
    on_retry: list[NotifierConfig] = Field(
        default_factory=list, description="Called when a task failed but will be retried."
    )
    on_success: list[NotifierConfig] = Field(
        default_factory=list, description="Called once when a whole run succeeds."
    )
    deadline: DeadlineConfig | None = Field(default=None, description="Alert on runs that take too long.")
