"""The Redis target's YAML options, key templates and aggregate scripts (no server)."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from pydantic import ValidationError

from airflow_provider_sync.config.pipeline import target_model
from airflow_provider_sync.config.resolve import load_pipeline
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.publish.redis import CommandBuffer, RedisWriter, _script_arguments, redis_client
from airflow_provider_sync.targets import target_for
from airflow_provider_sync.targets.redis import (
    AggregateSpec,
    KeyTemplate,
    RedisTargetOptions,
    RedisWriteSpec,
    redis_load_options,
    template_columns,
    write_spec_from_options,
)
from airflow_provider_sync.targets.registry import TargetCapabilities, check_options_match
from tests.dags.conftest import REPO


def test_templates_name_columns_and_nothing_else() -> None:
    assert template_columns("content:{content_id}:{region}:{content_id}") == ("content_id", "region")
    assert template_columns("top:content") == ()
    assert template_columns("{{literal}}:{id}") == ("id",)
    for bad, shown in [
        ("c:{id:>5}", "{id:>5}"),
        ("c:{id!r}", "{id!r}"),
        ("c:{row.id}", "{row.id}"),
        ("c:{ids[0]}", "{ids[0]}"),
        ("c:{}", "{}"),
    ]:
        with pytest.raises(ValueError, match=re.escape(f"{bad!r}: {shown} is not a column placeholder")):
            template_columns(bad)
    with pytest.raises(ValueError, match=r"template 'c:\{id' is malformed"):
        template_columns("c:{id")


def test_options_refuse_what_cannot_work() -> None:
    options = RedisTargetOptions.model_validate(
        {"key": "content:{content_id}", "ttl": "1h30m", "aggregates": [{"type": "incrby", "key": "n"}]}
    )
    assert (options.value, options.ttl, options.marker_ttl) == (
        "hash",
        timedelta(minutes=90),
        timedelta(days=30),
    )
    cases = [
        ({"key": "content"}, "key 'content' names no column, so every row would overwrite the same key"),
        (
            {"key": "c:{a}", "aggregates": [{"type": "zincrby", "key": "top"}]},
            "a zincrby aggregate needs member",
        ),
        (
            {"key": "c:{a}", "aggregates": [{"type": "incrby", "key": "n", "keep_top": 3}]},
            "member and keep_top apply to zincrby aggregates only",
        ),
        ({"key": "c:{a}", "value": "none"}, "value: none writes nothing unless aggregates are listed"),
        ({"key": "c:{a}", "value": "list"}, "Input should be 'hash', 'json' or 'none'"),
        (
            {"key": "c:{a}", "aggregates": [{"type": "incrby", "key": "n", "by": "1x"}]},
            "'1x' is not a valid name",
        ),
    ]
    for body, message in cases:
        with pytest.raises(ValidationError, match=message):
            RedisTargetOptions.model_validate(body)


def test_redis_is_a_registered_kind_with_its_own_options_section() -> None:
    kind = target_for("redis")
    assert kind.name == "redis" and kind.options_key == "redis"
    assert kind.capabilities == TargetCapabilities(
        tables=False, updates_in_place=False, deletes=True, transactions=False
    )
    from airflow_provider_sync.pipeline.publish_redis import write_to_redis

    assert kind.writer() is write_to_redis
    target = target_model().model_validate({"conn_id": "cache", "redis": {"key": "c:{id}"}})
    with pytest.raises(
        TerminalError, match=r"target\.redis options are set but connection 'cache' is of type"
    ):
        check_options_match("events", "cache", "postgres", target)
    info = ConnectionInfo(conn_type="redis", host="cache", port=6380, extra={"db": 2})
    assert kind.lineage(info, "engagement_events") == ("redis://cache:6380", "2.engagement_events")


def test_the_fanout_example_gives_the_load_its_redis_write_spec() -> None:
    tables = load_pipeline(REPO / "dag_configs" / "engagement_fanout.yaml").tables
    (table,) = [t for t in tables if t.name == "engagement_to_redis"]

    (options,) = redis_load_options(table).values()

    assert options == RedisWriteSpec(
        key=KeyTemplate.parse("content:{content_id}"),
        value="hash",
        columns=("content_id", "event_id", "event_type", "occurred_at"),
        ttl_ms=7 * 86_400_000,
        aggregates=(
            AggregateSpec(type="incrby", key=KeyTemplate.parse("plays:{content_id}")),
            AggregateSpec(
                type="zincrby",
                key=KeyTemplate.parse("top:content"),
                member=KeyTemplate.parse("{content_id}"),
                keep_top=100,
            ),
        ),
    )
    assert list(redis_load_options(table)) == ["target_options"]
    without = SimpleNamespace(name="t", target=SimpleNamespace(redis=None))
    with pytest.raises(TerminalError, match=r"target\.redis is not set; add at least target\.redis\.key"):
        redis_load_options(without)


def test_key_templates_render_text_values_and_refuse_nulls() -> None:
    template = KeyTemplate.parse("{{c}}:{id}:{kind}")
    assert template.render({"id": ["1", "2"], "kind": ["a", "b"]}, 2, "t") == ["{c}:1:a", "{c}:2:b"]
    with pytest.raises(TerminalError, match=r"row 1 of the batch has no value \(null\) for column 'kind'"):
        template.render({"id": ["1", "2"], "kind": ["a", None]}, 2, "t")


def _writer(*aggregates: dict[str, Any]) -> RedisWriter:
    options = RedisTargetOptions.model_validate(
        {"key": "c:{id}", "value": "none", "aggregates": list(aggregates)}
    )
    return RedisWriter(None, write_spec_from_options(options), target="t")


def test_deltas_are_summed_per_run_in_a_deterministic_order() -> None:
    writer = _writer(
        {"type": "incrby", "key": "plays:{id}", "by": "n", "ttl": "1m"},
        {"type": "zincrby", "key": "top", "member": "{id}", "by": "n", "keep_top": 2},
    )
    batch = pa.record_batch({"id": [2, 1, 2, 3], "n": [5, 1, None, 2]})
    writer.write_batch(batch)
    writer.write_batch(batch.slice(0, 1))

    assert writer.delta_commands() == [
        ("I", "plays:1", ("1",)),
        ("E", "plays:1", ("60000",)),
        ("I", "plays:2", ("10",)),
        ("E", "plays:2", ("60000",)),
        ("I", "plays:3", ("2",)),
        ("E", "plays:3", ("60000",)),
        ("Z", "top", ("1.0", "1")),
        ("Z", "top", ("10.0", "2")),
        ("Z", "top", ("2.0", "3")),
        ("T", "top", ("2",)),
    ]
    assert writer.written == 5


def test_script_arguments_list_each_key_once_with_its_type() -> None:
    commands = [("I", "n:1", ("3",)), ("Z", "top", ("1.5", "a")), ("T", "top", ("10",)), ("E", "n:1", ("5",))]
    keys, args = _script_arguments(commands, {"top"})
    assert keys == ["n:1", "top"]
    assert args == ["sz", "I", "2", "3", "", "Z", "3", "1.5", "a", "T", "3", "10", "", "E", "2", "5", ""]
    # A part holding only a sorted set's TTL still declares the key a sorted set.
    assert _script_arguments([("E", "top", ("5",))], {"top"}) == (["top"], ["z", "E", "2", "5", ""])


def test_the_connection_gives_host_port_credentials_and_database() -> None:
    info = ConnectionInfo(
        conn_type="redis",
        host="cache",
        port=6380,
        login="app",
        password="s3cret",
        extra={"db": "3", "ssl": True},
    )
    kwargs = redis_client(info).connection_pool.connection_kwargs
    assert {k: kwargs[k] for k in ("host", "port", "username", "password", "db")} == {
        "host": "cache",
        "port": 6380,
        "username": "app",
        "password": "s3cret",
        "db": 3,
    }
    assert (
        redis_client(ConnectionInfo(conn_type="redis", database="5")).connection_pool.connection_kwargs["db"]
        == 5
    )
    with pytest.raises(TerminalError, match=r"database 'zero' is not a number; set the extra's 'db'"):
        redis_client(ConnectionInfo(conn_type="redis", extra={"db": "zero"}))


def test_commands_are_packed_as_resp_arrays_of_bulk_strings() -> None:
    commands = CommandBuffer()
    commands.add(b"HSET", "content:7", "title", "Été")
    commands.add(b"PEXPIRE", "content:7", b"1000")
    assert commands.count == 2
    assert b"".join(commands.chunks) == (
        b"*4\r\n$4\r\nHSET\r\n$9\r\ncontent:7\r\n$5\r\ntitle\r\n$5\r\n\xc3\x89t\xc3\xa9\r\n"
        b"*3\r\n$7\r\nPEXPIRE\r\n$9\r\ncontent:7\r\n$4\r\n1000\r\n"
    )
