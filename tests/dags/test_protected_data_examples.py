"""The two protected-data examples in dag_configs/ run under dag.test() against the local PostgreSQL:
the GDPR production → staging copy and the media engagement analytics pipeline. Table names are moved
into private schemas; everything else is the example file as shipped."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.core.encrypt import decrypt_value
from airflow_provider_sync.core.mask import mask_email
from tests.dags.conftest import copy_example
from tests.integration.step_support import Namespace, namespace, set_secrets

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 2, 1, 8, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def source(pg_uri: str) -> Iterator[Namespace]:
    yield from namespace("postgres", pg_uri)


@pytest.fixture
def target(pg_uri: str) -> Iterator[Namespace]:
    yield from namespace("postgres", pg_uri)


def masked_email(value: str) -> str:
    return str(mask_email(pa.array([value]))[0].as_py())


def localise(configs_dir: Path, example: str, replacements: dict[str, str]) -> None:
    path = copy_example(example, configs_dir)
    text = path.read_text()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text + "default_args: {retries: 0}\n")


def test_gdpr_prod_to_staging_example(
    source: Namespace, target: Namespace, configs_dir: Path, monkeypatch: pytest.MonkeyPatch,
    run_pipeline: Callable[..., Any],
) -> None:
    source.run(
        f"CREATE TABLE {source.name('customers')} (id int PRIMARY KEY, email text, phone text, "
        "full_name text, card_number text, loyalty_id text, national_id text, notes text, country text, "
        "signup_at timestamptz, updated_at timestamptz)"
    )
    rows = []
    for i in range(1, 41):
        rows.append((
            i, "not-an-email" if i == 5 else f"customer{i}@example.org",
            "12" if i == 9 else f"+44 20 7946 {i:04d}", f"Ada Lovelace{i}", f"4111 1111 1111 {i:04d}",
            f"LOY-{i:05d}", f"QQ{i:06d}C", f"called about invoice {i}", "XX" if i == 13 else "GB",
            T0 - dt.timedelta(days=30), T0 + dt.timedelta(minutes=i),
        ))
    source.many(f"INSERT INTO {source.name('customers')} VALUES ({', '.join(['%s'] * 11)})", rows)
    monkeypatch.setenv("AIRFLOW_CONN_PROD_CRM", source.uri)
    monkeypatch.setenv("AIRFLOW_CONN_STAGING_CRM", target.uri)
    keyring = set_secrets(monkeypatch, "gdpr_keyring", "gdpr_mask_secret")
    localise(configs_dir, "gdpr_prod_to_staging.yaml", {
        "table: public.customers\n\ntarget": f"table: {source.name('customers')}\n\ntarget",
        "table: public.customers\n  mode": f"table: {target.name('customers')}\n  mode",
        "max_invalid_ratio: 0.05": "max_invalid_ratio: 0.1",  # 3 of these 40 rows break a rule
    })

    run = run_pipeline("gdpr_prod_to_staging")
    assert run.state == "success"
    loaded = {row["id"]: row for row in target.fetch(f"SELECT * FROM {target.name('customers')}")}
    assert sorted(loaded) == [i for i in range(1, 41) if i not in (5, 13)]  # 5 quarantined, 13 dropped
    context = f"{target.name('customers')}.national_id"
    for i, row in loaded.items():
        assert row["email"] == masked_email(f"customer{i}@example.org") != f"customer{i}@example.org"
        assert row["card_number"] == f"**** **** **** {i:04d}"
        assert row["full_name"].startswith("person_") and len(row["loyalty_id"]) == 64
        assert decrypt_value(row["national_id"], keyring, context) == f"QQ{i:06d}C"
        assert row["notes"].startswith("enc:v1:gcm:k1:") and row["copied_from"] == "production"
    assert loaded[9]["phone"] == "**", "an invalid phone is only warned about, and still masked"
    quarantined = target.quarantine("gdpr_prod_to_staging")
    assert [(q["rule"], q["row_json"]["id"]) for q in quarantined] == [("email.email", 5)]
    saved = quarantined[0]["row_json"]
    assert saved["email"] == masked_email("not-an-email") and "not-an-email" not in str(saved)
    assert "QQ000005C" not in str(saved)
    assert decrypt_value(saved["national_id"], keyring, context) == "QQ000005C"


def test_engagement_analytics_example(
    source: Namespace, target: Namespace, configs_dir: Path, monkeypatch: pytest.MonkeyPatch,
    run_pipeline: Callable[..., Any],
) -> None:
    source.run(f"CREATE TABLE {source.name('content')} (content_id int PRIMARY KEY, content_type text, "
               "length_seconds int)")
    source.many(f"INSERT INTO {source.name('content')} VALUES (%s, %s, %s)",
                [(1, "episode", 1800), (2, "trailer", 120), (3, "live", None), (4, "teaser", 0)])
    source.run(f"CREATE TABLE {source.name('engagement_events')} (event_id bigint PRIMARY KEY, user_id int, "
               "content_id int, duration_ms int, occurred_at timestamptz)")
    events = [
        (1, 501, 1, 900_000, T0),        # half an episode: 900 s of 1800 s = 50 %
        (2, 502, 2, 30_000, T0),         # 30 s of a 120 s trailer = 25 %
        (3, 501, 3, 60_000, T0),         # live: no length -> NULL percent
        (4, 503, 4, 5_000, T0),          # zero length -> NULL percent, not a division error
        (5, 504, 1, None, T0),           # no duration -> NULL seconds and percent
        (6, 505, 9, 12_345, T0),         # unknown content -> NULL type, length and percent
        (7, 506, 1, -5, T0),             # negative duration -> quarantined
    ]
    source.many(f"INSERT INTO {source.name('engagement_events')} VALUES (%s, %s, %s, %s, %s)", events)
    target.run(f'CREATE SCHEMA IF NOT EXISTS "{target.schema}"')
    monkeypatch.setenv("AIRFLOW_CONN_MEDIA_APP_DB", source.uri)
    monkeypatch.setenv("AIRFLOW_CONN_ANALYTICS_WAREHOUSE", target.uri)
    set_secrets(monkeypatch, "unused_keyring", "analytics_pseudonym_secret")
    localise(configs_dir, "engagement_analytics.yaml", {
        "table: public.engagement_events": f"table: {source.name('engagement_events')}",
        "table: analytics.engagement": f"table: {target.name('engagement')}",
        "table: public.content": f"table: {source.name('content')}",
        "max_invalid_ratio: 0.02": "max_invalid_ratio: 0.2",
    })

    run = run_pipeline("engagement_analytics")
    assert run.state == "success"
    got = {row["event_id"]: row for row in target.fetch(f"SELECT * FROM {target.name('engagement')}")}
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    assert list(got[1]) == ["event_id", "user_id", "content_id", "content_type", "occurred_at", "duration_ms",
                            "length_seconds", "engagement_seconds", "engagement_percent"]
    summary = {
        i: (r["content_type"], r["engagement_seconds"], r["engagement_percent"]) for i, r in got.items()
    }
    assert summary == {
        1: ("episode", 900.0, 50.0), 2: ("trailer", 30.0, 25.0), 3: ("live", 60.0, None),
        4: ("teaser", 5.0, None), 5: ("episode", None, None), 6: (None, 12.345, None),
    }
    assert got[1]["user_id"] == got[3]["user_id"] != got[2]["user_id"], "pseudonyms are deterministic"
    assert all(str(r["user_id"]).startswith("u_") for r in got.values())
    quarantined = target.quarantine("engagement_analytics")
    assert [(q["rule"], q["row_json"]["event_id"]) for q in quarantined] == [("duration_ms.range", 7)]
    assert quarantined[0]["row_json"]["user_id"].startswith("u_"), "the user id is pseudonymised there too"
