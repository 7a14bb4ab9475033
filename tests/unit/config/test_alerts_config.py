"""The ``alerts:`` and ``audit:`` YAML models: accepted shapes, defaults, and the errors users see."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from pydantic import ValidationError

from airflow_provider_sync.config.alerts import AlertsConfig, NotifierConfig
from airflow_provider_sync.config.audit import AuditConfig

FULL_EXAMPLE = """
on_failure:
  - log: {level: error}
  - email: {to: [data-team@example.com, oncall@example.com], conn_id: smtp_ops}
  - webhook: {conn_id: team_chat, format: slack}
on_retry:
  - log
on_success:
  - webhook: {conn_id: audit_hook}
deadline:
  after: 1h30m
  notify:
    - webhook: {conn_id: team_chat, timeout: 5s}
"""


def _errors(data: object) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        AlertsConfig.model_validate(data)
    return [(".".join(str(part) for part in error["loc"]), error["msg"]) for error in caught.value.errors()]


def test_full_example_parses_with_defaults_filled_in() -> None:
    alerts = AlertsConfig.model_validate(yaml.safe_load(FULL_EXAMPLE))

    assert [entry.kind for entry in alerts.on_failure] == ["log", "email", "webhook"]
    assert alerts.on_failure[0].log is not None and alerts.on_failure[0].log.level == "error"
    email = alerts.on_failure[1].email
    assert email is not None
    assert email.to == ["data-team@example.com", "oncall@example.com"]
    assert email.conn_id == "smtp_ops" and email.from_email is None
    webhook = alerts.on_failure[2].webhook
    assert webhook is not None
    assert (webhook.conn_id, webhook.format, webhook.timeout) == ("team_chat", "slack", timedelta(seconds=10))
    retry_log = alerts.on_retry[0].log
    assert retry_log is not None and retry_log.level == "warning"
    assert alerts.deadline is not None
    assert alerts.deadline.after == timedelta(hours=1, minutes=30)
    assert alerts.deadline.from_ == "queued"
    deadline_hook = alerts.deadline.notify[0].webhook
    assert deadline_hook is not None and deadline_hook.timeout == timedelta(seconds=5)


def test_json_dump_round_trips_with_yaml_spelling() -> None:
    alerts = AlertsConfig.model_validate(yaml.safe_load(FULL_EXAMPLE))
    dumped = alerts.model_dump(mode="json", by_alias=True, exclude_none=True)

    assert dumped["deadline"] == {
        "after": "90m",
        "from": "queued",
        "notify": [{"webhook": {"conn_id": "team_chat", "format": "json", "timeout": "5s"}}],
    }
    assert AlertsConfig.model_validate(dumped) == alerts


def test_single_recipient_and_null_log_settings_are_accepted() -> None:
    entry = NotifierConfig.model_validate({"email": {"to": "ops@example.com"}})
    assert entry.email is not None and entry.email.to == ["ops@example.com"]
    assert entry.email.conn_id == "smtp_default"
    assert NotifierConfig.model_validate({"log": None}).kind == "log"


def test_deadline_from_logical_date() -> None:
    deadline = {"after": 600, "from": "logical_date", "notify": ["log"]}
    alerts = AlertsConfig.model_validate({"deadline": deadline})
    assert alerts.deadline is not None
    assert (alerts.deadline.after, alerts.deadline.from_) == (timedelta(minutes=10), "logical_date")


@pytest.mark.parametrize(
    ("entry", "expected_loc", "expected_text"),
    [
        ({"slack": {"conn_id": "x"}}, "on_failure.0", "exactly one key: log, email or webhook"),
        ({"log": {}, "email": {"to": ["a@b.example"]}}, "on_failure.0", "exactly one key"),
        ("email", "on_failure.0", "exactly one key"),
        ({"webhook": {"conn_id": "x", "url": "https://hooks.example.com/T/B/secret"}},
         "on_failure.0.webhook.inline_address", "read only from an Airflow connection"),
        ({"webhook": {"conn_id": "x", "format": "xml"}}, "on_failure.0.webhook.format", "'json' or 'slack'"),
        ({"log": {"level": "loud"}}, "on_failure.0.log.level", "'warning'"),
        ({"email": {"to": []}}, "on_failure.0.email.to", "at least 1 item"),
        ({"email": {"to": ["not-an-address"]}}, "on_failure.0.email.to.0", "is not an e-mail address"),
        ({"webhook": {"conn_id": "bad id!"}}, "on_failure.0.webhook.conn_id", "pattern"),
    ],
)
def test_bad_notifier_entries_name_the_place_and_the_rule(
    entry: object, expected_loc: str, expected_text: str
) -> None:
    errors = _errors({"on_failure": [entry]})
    assert len(errors) == 1, errors
    loc, message = errors[0]
    assert loc == expected_loc
    assert expected_text in message


@pytest.mark.parametrize("key", ["url", "host", "endpoint", "webhook_url"])
def test_inline_webhook_address_is_rejected_without_echoing_it(key: str) -> None:
    with pytest.raises(ValidationError) as caught:
        AlertsConfig.model_validate({"on_failure": [{"webhook": {key: "https://h.example/T/B/s3cr3t"}}]})
    assert "s3cr3t" not in str(caught.value)
    assert "s3cr3t" not in repr(caught.value.errors())
    assert f"remove [{key!r}]" in str(caught.value)


@pytest.mark.parametrize(
    ("deadline", "expected_loc"),
    [
        ({"after": "0s", "notify": ["log"]}, "deadline.after"),
        ({"after": "soon", "notify": ["log"]}, "deadline.after"),
        ({"after": "1h", "from": "started", "notify": ["log"]}, "deadline.from"),
        ({"after": "1h", "notify": []}, "deadline.notify"),
        ({"after": "1h"}, "deadline.notify"),
        ({"after": "1h", "notify": ["log"], "repeat": True}, "deadline.repeat"),
    ],
)
def test_bad_deadlines(deadline: dict[str, object], expected_loc: str) -> None:
    assert [loc for loc, _ in _errors({"deadline": deadline})] == [expected_loc]


def test_unknown_alert_event_is_rejected() -> None:
    assert [loc for loc, _ in _errors({"on_fail": ["log"]})] == ["on_fail"]


def test_audit_defaults_and_schema_alias() -> None:
    expected = AuditConfig(enabled=True, conn_id=None, schema=None, table="sync_audit")
    assert AuditConfig.model_validate({}) == expected
    audit = AuditConfig.model_validate({"conn_id": "warehouse", "schema": "ops", "table": "pipeline_audit"})
    assert (audit.conn_id, audit.schema_, audit.table) == ("warehouse", "ops", "pipeline_audit")
    assert audit.model_dump(by_alias=True)["schema"] == "ops"


@pytest.mark.parametrize(
    "bad", [{"table": "1audit"}, {"schema": "ops;drop"}, {"enabled": "sometimes"}, {"tabel": "x"}]
)
def test_audit_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AuditConfig.model_validate(bad)


def test_json_schema_accepts_what_the_model_accepts_and_rejects_two_kinds() -> None:
    import jsonschema

    schema = AlertsConfig.model_json_schema(by_alias=True)
    jsonschema.validate(yaml.safe_load(FULL_EXAMPLE), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"on_failure": [{"log": {}, "email": {"to": ["a@b.example"]}}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"on_failure": [{"webhook": {"conn_id": "x", "url": "https://h/x"}}]}, schema)
