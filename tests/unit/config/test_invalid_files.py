"""Every kind of broken pipeline file gives a located, actionable message (file, YAML path, line, hint)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from airflow_provider_sync.config.resolve import load_pipeline
from airflow_provider_sync.errors import ConfigError, ConfigIssue, SyncError, TerminalError

HEAD = """\
version: 1
dag_id: orders_sync
"""
SOURCE = "source: {conn_id: src, table: public.orders}\n"
TARGET = "target: {conn_id: dst, keys: [id]}\n"
INCREMENTAL = "incremental: {strategy: timestamp, column: updated_at}\n"
VALID = HEAD + SOURCE + TARGET + INCREMENTAL

# (case id, file text, expected YAML path, expected line, words the message must contain)
CASES = [
    (
        "unknown-top-key",
        VALID + "scheduel: '@daily'\n",
        "scheduel",
        6,
        ["unknown key 'scheduel'", "Did you mean 'schedule'?"],
    ),
    (
        "unknown-source-key",
        HEAD + "source: {conn_id: src, tabel: orders}\n" + TARGET,
        "source.tabel",
        3,
        ["unknown key 'tabel'", "Did you mean 'table'?"],
    ),
    (
        "unknown-target-key",
        HEAD + SOURCE + "target: {conn_id: dst, key: [id]}\n",
        "target.key",
        4,
        ["Did you mean 'keys'?"],
    ),
    (
        "unknown-incremental-key",
        HEAD + SOURCE + TARGET + "incremental: {strategy: timestamp, colum: x}\n",
        "incremental.colum",
        5,
        ["Did you mean 'column'?"],
    ),
    (
        "unknown-default-args-key",
        VALID + "default_args:\n  retry: 3\n",
        "default_args.retry",
        7,
        ["Did you mean 'retries'?", "Allowed keys:"],
    ),
    (
        "retries-not-int",
        VALID + "default_args:\n  retries: three\n",
        "default_args.retries",
        7,
        ["whole number", "'three'"],
    ),
    (
        "retries-negative",
        VALID + "default_args:\n  retries: -1\n",
        "default_args.retries",
        7,
        ["greater than or equal to 0"],
    ),
    (
        "bad-cron",
        VALID + "schedule: '61 * * * *'\n",
        "schedule",
        6,
        ["not a valid cron expression", "@daily"],
    ),
    (
        "bad-preset",
        VALID + "schedule: '@fortnightly'\n",
        "schedule",
        6,
        ["unknown schedule preset '@fortnightly'", "@hourly"],
    ),
    (
        "bad-key-identifier",
        HEAD + SOURCE + "target: {conn_id: dst, keys: ['id; drop table x']}\n",
        "target.keys[0]",
        4,
        ["not a valid name", "letter or underscore"],
    ),
    (
        "injection-in-table",
        HEAD + "source: {conn_id: src, table: 'orders; DROP TABLE users'}\n" + TARGET,
        "source.table",
        3,
        ["not a valid name"],
    ),
    (
        "too-many-dots",
        HEAD + "source: {conn_id: src, table: a.b.c.d}\n" + TARGET,
        "source.table",
        3,
        ["schema.table"],
    ),
    ("missing-version", "dag_id: x\n" + SOURCE + TARGET, "version", 1, ["required key 'version' is missing"]),
    ("wrong-version", "version: 2\ndag_id: x\n" + SOURCE + TARGET, "version", 1, ["allowed values: 1"]),
    ("missing-dag-id", "version: 1\n" + SOURCE + TARGET, "dag_id", 1, ["required key 'dag_id' is missing"]),
    (
        "bad-dag-id",
        "version: 1\ndag_id: 'my dag!'\n" + SOURCE + TARGET,
        "dag_id",
        2,
        ["is not allowed here", "letters, digits"],
    ),
    (
        "upsert-without-keys",
        HEAD + SOURCE + "target: {conn_id: dst}\n",
        "target.keys",
        4,
        ["mode 'upsert' needs 'keys'"],
    ),
    (
        "mode-typo",
        HEAD + SOURCE + "target: {conn_id: dst, mode: upsrt, keys: [id]}\n",
        "target.mode",
        4,
        ["'upsrt' is not allowed", "Did you mean 'upsert'?"],
    ),
    (
        "strategy-typo",
        HEAD + SOURCE + TARGET + "incremental: {strategy: timestmp, column: x}\n",
        "incremental.strategy",
        5,
        ["Did you mean 'timestamp'?", "'sequence'"],
    ),
    (
        "cursor-column-missing",
        HEAD + SOURCE + TARGET + "incremental: {strategy: timestamp}\n",
        "incremental.column",
        5,
        ["strategy 'timestamp' needs 'column'"],
    ),
    (
        "source-conn-missing",
        HEAD + "source: {table: orders}\n" + TARGET,
        "source.conn_id",
        3,
        ["required key 'conn_id' is missing"],
    ),
    (
        "target-conn-missing",
        HEAD + SOURCE + "target: {keys: [id]}\n",
        "target.conn_id",
        4,
        ["connection to write to"],
    ),
    (
        "table-and-query",
        HEAD + "source: {conn_id: s, table: t, query: select 1}\n" + TARGET,
        "source",
        3,
        ["either 'table' or 'query', not both"],
    ),
    (
        "neither-table-nor-query",
        HEAD + "source: {conn_id: s}\n" + TARGET,
        "source",
        3,
        ["give 'table' or 'query'"],
    ),
    (
        "query-not-select",
        HEAD
        + "source: {conn_id: s, query: 'DELETE FROM t'}\n"
        + "target: {conn_id: d, table: t, keys: [id]}\n",
        "source.query",
        3,
        ["single SELECT"],
    ),
    (
        "unset-env-var",
        HEAD + "source: {conn_id: '${SYNC_TEST_SURELY_UNSET}', table: t}\n" + TARGET,
        "source.conn_id",
        3,
        ["environment variable 'SYNC_TEST_SURELY_UNSET' is not set", ":-default"],
    ),
    ("duplicate-yaml-key", VALID + "dag_id: again\n", "dag_id", 6, ["duplicate key 'dag_id'", "line 2"]),
    ("yaml-syntax", HEAD + "source: {conn_id: src, table: [orders\n", "", 4, ["YAML syntax error"]),
    (
        "batch-size-zero",
        VALID.replace("column: updated_at}", "column: updated_at, batch_size: 0}"),
        "incremental.batch_size",
        5,
        ["greater than 0"],
    ),
    (
        "batch-size-huge",
        VALID.replace("column: updated_at}", "column: updated_at, batch_size: 5000000}"),
        "incremental.batch_size",
        5,
        ["less than or equal to 1000000"],
    ),
    (
        "null-policy",
        VALID.replace("column: updated_at}", "column: updated_at, null_policy: skip}"),
        "incremental.null_policy",
        5,
        ["'skip' is not allowed", "'exclude'"],
    ),
    (
        "bad-timezone",
        VALID.replace("column: updated_at}", "column: updated_at, source_timezone: Mars/Base}"),
        "incremental.source_timezone",
        5,
        ["unknown time zone 'Mars/Base'", "Europe/Paris"],
    ),
    (
        "bad-lag",
        VALID.replace("column: updated_at}", "column: updated_at, lag: 5 mins}"),
        "incremental.lag",
        5,
        ["expected a duration such as 30s"],
    ),
    (
        "duration-lag-on-sequence",
        HEAD + SOURCE + TARGET + "incremental: {strategy: sequence, column: id, lag: 5m}\n",
        "incremental.lag",
        5,
        ["lag must be a number for strategy 'sequence'"],
    ),
    (
        "bad-retry-delay",
        VALID + "default_args: {retry_delay: soon}\n",
        "default_args.retry_delay",
        6,
        ["expected a duration"],
    ),
    ("empty-tables", VALID + "tables: []\n", "tables", 6, ["'tables' is empty"]),
    (
        "table-unknown-key",
        VALID + "tables:\n  - name: orders\n    sorce: {table: x}\n",
        "tables[0].sorce",
        8,
        ["Did you mean 'source'?"],
    ),
    (
        "table-bad-mode",
        VALID + "tables:\n  - name: a\n  - name: b\n    target: {mode: merge}\n",
        "tables[1].target.mode",
        9,
        ["'merge' is not allowed"],
    ),
    (
        "duplicate-table",
        VALID + "tables:\n  - name: orders\n  - name: orders\n",
        "tables[1].name",
        8,
        ["duplicate table 'orders'", "tables[0]"],
    ),
    (
        "table-name-not-task-id",
        VALID + "tables:\n  - name: 'my table'\n",
        "tables[0].name",
        7,
        ["is not allowed here", "a letter or '_'"],
    ),
    (
        "table-missing-name",
        VALID + "tables:\n  - source: {table: x}\n",
        "tables[0].name",
        7,
        ["required key 'name' is missing"],
    ),
    (
        "table-requirement",
        HEAD
        + "source: {conn_id: src}\n"
        + TARGET
        + "tables:\n  - name: a\n    source: {table: a}\n  - name: b\n",
        "tables[1].source",
        8,
        ["give 'table' or 'query'"],
    ),
    (
        "interval-needs-cursor",
        HEAD + SOURCE + TARGET + "incremental: {strategy: full, mode: interval}\n",
        "incremental.mode",
        5,
        ["mode 'interval' needs a strategy"],
    ),
    (
        "max-active-runs-zero",
        VALID + "max_active_runs: 0\n",
        "max_active_runs",
        6,
        ["greater than or equal to 1"],
    ),
    ("tags-not-list", VALID + "tags: prod\n", "tags", 6, ["must be a list"]),
    ("bad-start-date", VALID + "start_date: yesterday\n", "start_date", 6, ["'yesterday'"]),
    (
        "conn-id-with-space",
        HEAD + "source: {conn_id: 'my conn', table: t}\n" + TARGET,
        "source.conn_id",
        3,
        ["is not allowed here", "letters, digits"],
    ),
    ("catchup-not-bool", VALID + "catchup: maybe\n", "catchup", 6, ["true or false"]),
    (
        "unknown-step",
        VALID + "steps:\n  - validat: {}\n",
        "steps[0].validat",
        7,
        ["unknown key 'validat'", "Did you mean 'validate'?"],
    ),
    (
        "step-two-keys",
        VALID
        + "steps:\n  - validate: {rules: {id: {not_null: true}}}\n    mask: {columns: {email: {strategy: redact}}}\n",
        "steps[0]",
        7,
        ["exactly one key"],
    ),
    (
        "staging-not-url",
        VALID + "staging: {base: /tmp/x}\n",
        "staging.base",
        6,
        ["is not allowed here", "s3://bucket/sync"],
    ),
    ("not-a-mapping", "- version: 1\n", "", 1, ["must be a YAML mapping"]),
]


def _issues(tmp_path: Path, text: str) -> list[ConfigIssue]:
    path = tmp_path / "pipeline.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    return caught.value.issues


@pytest.mark.parametrize(
    ("text", "path", "line", "words"), [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_broken_file_is_reported_with_path_line_and_hint(
    tmp_path: Path, text: str, path: str, line: int | None, words: list[str]
) -> None:
    issues = _issues(tmp_path, text)
    matching = [issue for issue in issues if issue.path == path]
    assert matching, f"no issue at {path!r}; got {[str(i) for i in issues]}"
    issue = matching[0]
    assert issue.file.endswith("pipeline.yaml")
    assert issue.line == line, str(issue)
    for word in words:
        assert word in issue.message, f"{word!r} not in {issue.message!r}"


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        HEAD + "scheduel: x\nsource: {conn_id: s, tabel: t}\ntarget: {conn_id: d, mode: upsrt, keys: [id]}\n"
    )
    issues = _issues(tmp_path, text)
    assert {issue.path for issue in issues} >= {"scheduel", "source.tabel", "target.mode"}
    assert [issue.line for issue in issues] == sorted(issue.line or 0 for issue in issues)


def test_values_under_credential_like_keys_are_never_echoed(tmp_path: Path) -> None:
    pasted_uri = HEAD + "source: {conn_id: 'postgres://app:hunter2@db:5432/shop', table: t}\n" + TARGET
    issues = _issues(tmp_path, pasted_uri)
    assert [issue.path for issue in issues] == ["source.conn_id"]
    assert "hunter2" not in str(issues[0]) and "postgres://app:***@db:5432/shop" in str(issues[0])
    token = VALID + "staging: {base: 's3://bucket/x', conn_id: 'api token hunter2'}\n"
    (issue,) = _issues(tmp_path, token)
    assert issue.path == "staging.conn_id" and "hunter2" in issue.message, "conn ids are not secret"


def test_config_errors_are_terminal_sync_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    assert isinstance(caught.value, TerminalError) and isinstance(caught.value, SyncError)
    assert caught.value.terminal
    assert str(path) in str(caught.value)
