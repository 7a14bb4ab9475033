"""Whatever a pipeline file holds, reading it gives a valid model or a ConfigError: never another exception.

``load_pipeline`` turns an unforeseen exception into a last-resort "cannot be read" issue so the DAG folder
survives; these properties fail on that issue too, so every bug it would hide is found here. The deadline
makes every accepted or refused input fast as well (no example may take 2 s).
"""

from __future__ import annotations

import string
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_sync.config.issues import UNEXPECTED
from airflow_provider_sync.config.loader import load_yaml_text, substitute_env
from airflow_provider_sync.config.resolve import Pipeline, load_pipeline
from airflow_provider_sync.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(
    path.read_text(encoding="utf-8")
    for path in (REPO / "dag_configs").glob("*.yaml")
    if path.name != "defaults.yaml"
)
FAST = settings(
    max_examples=150,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("property")


def check_file(folder: Path, content: str | bytes, defaults: str | None = None) -> None:
    path = folder / "pipeline.yaml"
    if isinstance(content, str):
        content = content.encode("utf-8", "surrogatepass")
    path.write_bytes(content)
    defaults_path = folder / "defaults.yaml"
    if defaults is None:
        defaults_path.unlink(missing_ok=True)
    else:
        defaults_path.write_bytes(defaults.encode("utf-8", "surrogatepass"))
    try:
        pipeline = load_pipeline(path)
    except ConfigError as error:
        assert error.issues, "a ConfigError names at least one problem"
        for issue in error.issues:
            assert not issue.message.startswith(f"{UNEXPECTED}: "), str(issue)
            assert "Traceback" not in issue.message
        return
    assert isinstance(pipeline, Pipeline) and pipeline.tables


def check_yaml_layer(text: str) -> None:
    try:
        loaded = load_yaml_text(text, "random.yaml")
        substitute_env(loaded, {"SET": "value"})
    except ConfigError as error:
        assert error.issues


# --- values and structures -------------------------------------------------------------------------------

KEYS = {
    "top": ["version", "dag_id", "description", "schedule", "start_date", "end_date", "catchup", "tags",
            "owner", "max_active_runs", "params", "default_args", "staging", "alerts", "audit", "tables",
            "source", "target", "incremental", "steps", "pool", "wait_for_rows"],
    "source": ["conn_id", "table", "query", "columns"],
    "target": ["conn_id", "table", "mode", "keys", "create_if_missing", "on_load_error", "shared", "topic"],
    "incremental": ["strategy", "column", "key", "lag", "initial_value", "end_value", "batch_size",
                    "null_policy", "source_timezone", "mode", "on_watermark_ahead"],
    "default_args": ["retries", "retry_delay", "retry_exponential_backoff", "max_retry_delay",
                     "execution_timeout"],
    "wait_for_rows": ["poke_interval", "timeout", "deferrable", "soft_fail"],
}  # fmt: skip
WORDS = ["timestamp", "sequence", "version", "full", "upsert", "append", "replace", "src", "dst", "orders",
         "public.orders", "id", "updated_at", "5m", "1h30m", "0s", "-1", "1e400", "nan", ".inf", "UTC",
         "Europe/Paris", "America", "../etc", "@daily", "*/15 * * * *", "0 0 31 2 *", "2024-02-30",
         "2024-01-01T00:00:00Z", "0001-01-01", "9999-12-31 23:59:59", "SELECT 1", "SELECT 1; DROP TABLE t",
         "SELECT 1;", "${SECRET}", "${UNSET_XYZ}", "${A:-b}", "$$", "yes", "on", "~", "\x00", "\ud800",
         "é"]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=30),
    st.dates(),
    st.datetimes(timezones=st.sampled_from([None, timezone.utc, timezone(timedelta(hours=-11))])),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)


def section(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(KEYS[name]), values, max_size=len(KEYS[name]))


@st.composite
def pipeline_documents(draw: st.DrawFn) -> dict[str, Any]:
    document: dict[str, Any] = {"version": 1, "dag_id": "prop"}
    document["source"] = draw(section("source") | st.just({"conn_id": "src", "table": "orders"}))
    document["target"] = draw(section("target") | st.just({"conn_id": "dst", "keys": ["id"]}))
    document["incremental"] = draw(section("incremental") | st.just({"strategy": "timestamp", "column": "u"}))
    for key in draw(st.lists(st.sampled_from(KEYS["top"]), max_size=4)):
        sub = key if key in KEYS else None
        document[key] = draw(section(sub) if sub else values)
    if draw(st.booleans()):
        document["tables"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.sampled_from(["a", "b", "a b", ""])},
                    optional={
                        "source": section("source"),
                        "target": section("target"),
                        "incremental": section("incremental"),
                    },
                ),
                max_size=3,
            )
        )
    return document


def dumped(document: Any) -> str:
    text: str = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    return text


# Lines that broke the reader once: inserted anywhere, they must still give a ConfigError.
SNIPPETS = [
    "  lag: .inf\n", "<<: *x\n", "x: &x [*x]\n", "\tkey: 1\n", "- item\n", "dag_id: twice\n", "---\n",
    "  initial_value: 2024-02-30\n", "a: !!python/object:os.system {}\n", "  ? [a]\n  : b\n",
    "catchup: !!bool maybe\n", "start_date: !!timestamp soon\n", "max_active_runs: !!int ''\n",
    "  retries: 0x" + "f" * 3800 + "\n", "  source_timezone: America\n", 'description: "\\ud800"\n',
    "on: 1\n", "  initial_value: 'nan'\n", "  end_value: 9999-12-31 23:59:59\n", "schedule: '0 0 30 2 *'\n",
    "  batch_size: 1.0e+400\n", "start_date: 20240101\n", "  poke_interval: 0s\n",
]  # fmt: skip


@st.composite
def mutated_examples(draw: st.DrawFn) -> str:
    """One of the shipped example files with a few edits: cut, inserted, duplicated or swapped text."""
    text = draw(st.sampled_from(EXAMPLES))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        lines = text.splitlines(keepends=True) or [""]
        where = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        edit = draw(st.sampled_from(["cut", "insert", "duplicate", "swap", "chars", "value"]))
        if edit == "cut":
            del lines[where]
        elif edit == "insert":
            lines.insert(where, draw(st.sampled_from(SNIPPETS) | st.text(max_size=20)))
        elif edit == "duplicate":
            lines.insert(where, lines[where])
        elif edit == "swap" and len(lines) > 1:
            other = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[where], lines[other] = lines[other], lines[where]
        elif edit == "chars":
            line = lines[where]
            cut = draw(st.integers(min_value=0, max_value=len(line)))
            lines[where] = line[:cut] + draw(st.text(max_size=5)) + line[cut:]
        elif edit == "value" and ":" in lines[where]:
            key = lines[where].split(":", 1)[0]
            lines[where] = f"{key}: {draw(st.sampled_from(WORDS))}\n"
        text = "".join(lines)
    return text


# --- properties -------------------------------------------------------------------------------------------


@FAST
@given(text=st.text(max_size=400))
def test_any_text_is_a_model_or_a_config_error(folder: Path, text: str) -> None:
    check_file(folder, text)
    check_yaml_layer(text)


@FAST
@given(data=st.binary(max_size=400))
def test_any_bytes_are_a_model_or_a_config_error(folder: Path, data: bytes) -> None:
    check_file(folder, data)


YAMLISH = st.text(alphabet=string.ascii_letters[:6] + " :-[]{},&*!|>'\"#%@`?<.\n\t\\$~019", max_size=300)


@FAST
@given(text=YAMLISH)
def test_any_yamlish_text_is_a_model_or_a_config_error(folder: Path, text: str) -> None:
    check_file(folder, "version: 1\ndag_id: x\n" + text)
    check_yaml_layer(text)


@FAST
@given(
    document=pipeline_documents(),
    defaults=st.none() | section("default_args").map(lambda d: {"default_args": d}),
)
def test_any_structure_of_known_keys_is_a_model_or_a_config_error(
    folder: Path, document: dict[str, Any], defaults: dict[str, Any] | None
) -> None:
    check_file(folder, dumped(document), None if defaults is None else dumped(defaults))


@FAST
@given(text=mutated_examples())
def test_any_mutated_example_is_a_model_or_a_config_error(folder: Path, text: str) -> None:
    check_file(folder, text)


def test_the_unmutated_examples_load(folder: Path) -> None:
    """The mutations start from valid files, so the properties cover accepted files as well as refused."""
    for text in EXAMPLES:
        path = folder / "example.yaml"
        path.write_text(text, encoding="utf-8")
        assert isinstance(load_pipeline(path), Pipeline)


@FAST
@given(text=st.sampled_from(EXAMPLES), snippet=st.sampled_from(SNIPPETS), where=st.integers(min_value=0))
def test_any_example_with_a_hostile_line_is_a_model_or_a_config_error(
    folder: Path, text: str, snippet: str, where: int
) -> None:
    lines = text.splitlines(keepends=True)
    lines.insert(where % (len(lines) + 1), snippet)
    check_file(folder, "".join(lines))
