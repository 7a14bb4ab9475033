"""Airflow notifiers for pipeline alerts: log, e-mail (Airflow's SMTP provider) and webhook.

Each notifier is an :class:`airflow.sdk.BaseNotifier`, so it can be passed straight to
``on_failure_callback``/``on_retry_callback``/``on_success_callback`` of a task or DAG. ``event`` says which
of those it serves, so the message reads right. Nothing is rendered with Jinja: error texts are data, and
templating them would let a crafted value run template code.

Deadline alerts run in the triggerer and call :meth:`SyncNotifier.send_async` with a prepared message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from airflow_provider_sync.errors import MissingDriverError
from airflow_provider_sync.notifications.message import AlertMessage, message_from_task_context
from airflow_provider_sync.notifications.webhook import post_webhook, post_webhook_async

if TYPE_CHECKING:
    from airflow_provider_sync.config.alerts import NotifierConfig

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
           "critical": logging.CRITICAL}
ALERT_LOGGER = "airflow_provider_sync.alerts"


class SyncNotifier(BaseNotifier):
    """Base of the pipeline notifiers: builds an :class:`AlertMessage` from the callback context."""

    template_fields: Sequence[str] = ()

    def __init__(self, *, event: str, skip_reasons: Sequence[str] = ()) -> None:
        super().__init__()
        self.event = event
        # A DAG-level failure callback skips runs that failed through a task: that task already alerted.
        self.skip_reasons = frozenset(skip_reasons)

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # Nothing to render, and some callers pass a serialized DAG that cannot build a Jinja environment.
        return None

    def notify(self, context: Any) -> None:
        if context.get("reason") in self.skip_reasons:
            return
        self.send(message_from_task_context(self.event, context))

    async def async_notify(self, context: Any) -> None:
        if context.get("reason") in self.skip_reasons:
            return
        await self.send_async(message_from_task_context(self.event, context))

    def send(self, message: AlertMessage) -> None:
        raise NotImplementedError

    async def send_async(self, message: AlertMessage) -> None:
        self.send(message)


class LogNotifier(SyncNotifier):
    """Writes the alert as one log line (task log for task callbacks)."""

    def __init__(self, *, level: str = "warning", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if level not in _LEVELS:
            raise ValueError(f"log level {level!r} is not one of {', '.join(_LEVELS)}")
        self.level = level

    def send(self, message: AlertMessage) -> None:
        logging.getLogger(ALERT_LOGGER).log(_LEVELS[self.level], "%s", message.as_text().replace("\n", " | "))


class EmailNotifier(SyncNotifier):
    """Sends the alert by e-mail through an Airflow SMTP connection (``apache-airflow-providers-smtp``)."""

    def __init__(
        self,
        *,
        to: Sequence[str],
        conn_id: str = "smtp_default",
        from_email: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.to = list(to)
        self.conn_id = conn_id
        self.from_email = from_email

    def _hook(self) -> Any:
        try:
            from airflow.providers.smtp.hooks.smtp import SmtpHook
        except ImportError as exc:
            raise MissingDriverError("E-mail alerts", "smtp", "airflow.providers.smtp") from exc
        return SmtpHook(smtp_conn_id=self.conn_id)

    def send(self, message: AlertMessage) -> None:
        with self._hook() as smtp:
            smtp.send_email_smtp(**self._email(message))

    async def send_async(self, message: AlertMessage) -> None:
        async with self._hook() as smtp:
            await smtp.asend_email_smtp(**self._email(message))

    def _email(self, message: AlertMessage) -> dict[str, Any]:
        return {
            "to": self.to,
            "from_email": self.from_email,
            "subject": message.subject,
            "html_content": message.as_html(),
        }


class WebhookNotifier(SyncNotifier):
    """POSTs the alert as JSON to the address held by an Airflow connection."""

    def __init__(self, *, conn_id: str, format: str = "json", timeout_s: float = 10.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if format not in ("json", "slack"):
            raise ValueError(f"webhook format {format!r} is not one of json, slack")
        self.conn_id = conn_id
        self.format = format
        self.timeout_s = timeout_s

    def payload(self, message: AlertMessage) -> dict[str, Any]:
        if self.format == "slack":
            return {"text": message.as_text()}
        return message.as_dict()

    def send(self, message: AlertMessage) -> None:
        post_webhook(self.conn_id, self.payload(message), timeout_s=self.timeout_s)

    async def send_async(self, message: AlertMessage) -> None:
        await post_webhook_async(self.conn_id, self.payload(message), timeout_s=self.timeout_s)


def notifier_from_config(
    config: NotifierConfig | Mapping[str, Any], *, event: str, skip_reasons: Sequence[str] = ()
) -> SyncNotifier:
    """The notifier a YAML entry (model or plain ``{kind: settings}`` mapping) describes."""
    from airflow_provider_sync.config.alerts import NotifierConfig

    entry = config if isinstance(config, NotifierConfig) else NotifierConfig.model_validate(config)
    common: dict[str, Any] = {"event": event, "skip_reasons": skip_reasons}
    if entry.log is not None:
        return LogNotifier(level=entry.log.level, **common)
    if entry.email is not None:
        return EmailNotifier(
            to=entry.email.to, conn_id=entry.email.conn_id, from_email=entry.email.from_email, **common
        )
    if entry.webhook is not None:
        return WebhookNotifier(
            conn_id=entry.webhook.conn_id,
            format=entry.webhook.format,
            timeout_s=entry.webhook.timeout.total_seconds(),
            **common,
        )
    raise ValueError(f"notifier entry has no kind set: {entry!r}")
