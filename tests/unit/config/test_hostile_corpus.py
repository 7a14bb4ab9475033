"""A corpus of hostile pipeline files: every one is refused with the exact message, file, YAML path and line.

Each file under ``hostile/`` says what it must produce in its leading comments (or, when the file cannot
hold a comment, in ``<name>.expect`` next to it)::

    # expect: line 7 at incremental.lag: a duration must be finite ...
    # expect: defaults.yaml line 2 at dag_id: 'dag_id' cannot be set in a defaults file
    # expect: no line: the file is larger than ...
    # env: NAME="json-encoded value"

A file is judged as ``airflow-sync validate`` judges its folder: its own problems first, then targets it
shares with the other valid files of its folder. ``{dir}`` in an expected message stands for the folder.
Cases too large to commit (a file over the size limit, ten thousand aliases) are generated here instead.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_sync.config import bounded
from airflow_provider_sync.config.folder import shared_target_errors
from airflow_provider_sync.config.resolve import Pipeline, load_pipeline
from airflow_provider_sync.errors import ConfigError, ConfigIssue

CORPUS = Path(__file__).parent / "hostile"
UNSET_VARIABLE = "HOSTILE_CORPUS_UNSET_VARIABLE"
_EXPECT = re.compile(
    r"^# expect: (?:(?P<file>\S+) )?(?:line (?P<line>\d+)|no line)(?: at (?P<path>.+?))?: (?P<message>.*)$"
)
_ENV = re.compile(r"^# env: (?P<name>[A-Z_][A-Z0-9_]*)=(?P<value>.*)$")


@dataclass(frozen=True)
class Expected:
    file: str | None
    line: int | None
    path: str
    message: str


def corpus_files() -> list[Path]:
    return sorted(path for path in CORPUS.rglob("*.yaml") if path.name != "defaults.yaml")


def _header_lines(path: Path) -> list[str]:
    sidecar = path.with_name(path.name + ".expect")
    raw = sidecar.read_bytes() if sidecar.exists() else path.read_bytes()
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = []
    for line in re.split(r"\r\n|\r|\n", text):
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def expectations(path: Path) -> tuple[list[Expected], dict[str, str]]:
    expected: list[Expected] = []
    env: dict[str, str] = {}
    for line in _header_lines(path):
        if match := _EXPECT.match(line):
            number = match.group("line")
            expected.append(
                Expected(
                    match.group("file"),
                    int(number) if number else None,
                    match.group("path") or "",
                    match.group("message"),
                )
            )
        elif match := _ENV.match(line):
            env[match.group("name")] = json.loads(match.group("value"))
    return expected, env


def outcome(path: Path) -> list[ConfigIssue]:
    """The issues ``validate`` reports for ``path`` when given the file's folder."""
    try:
        load_pipeline(path)
    except ConfigError as error:
        return error.issues
    siblings: list[Pipeline] = []
    for sibling in sorted(path.parent.glob("*.yaml")):
        if sibling.name == "defaults.yaml":
            continue
        with contextlib.suppress(ConfigError):
            siblings.append(load_pipeline(sibling))
    error = shared_target_errors(siblings).get(str(path))
    return error.issues if error else []


def as_expected(issue: ConfigIssue, path: Path) -> Expected:
    issue_file = Path(issue.file)
    file = None if issue_file == path else str(issue_file.relative_to(path.parent))
    return Expected(file, issue.line, issue.path, issue.message.replace(str(path.parent), "{dir}"))


@pytest.fixture
def corpus_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv(UNSET_VARIABLE, raising=False)
    yield monkeypatch


@pytest.mark.parametrize("path", corpus_files(), ids=lambda path: str(path.relative_to(CORPUS)))
def test_hostile_file_is_refused_with_exact_located_messages(
    path: Path, corpus_env: pytest.MonkeyPatch
) -> None:
    expected, env = expectations(path)
    for name, value in env.items():
        corpus_env.setenv(name, value)
    assert expected, f"{path.name} states no expected outcome"
    assert [as_expected(issue, path) for issue in outcome(path)] == expected


def test_the_corpus_is_large_and_small() -> None:
    files = corpus_files()
    assert len(files) >= 100
    assert sum(path.stat().st_size for path in CORPUS.rglob("*") if path.is_file()) < 200_000


HEAD = (
    "version: 1\ndag_id: generated\nsource: {conn_id: src, table: orders}\n"
    + "target: {conn_id: dst, keys: [id]}\n"
)
# (case id, file text, expected line, YAML path, message): cases too large to commit.
GENERATED = [
    (
        "file-over-size-limit",
        HEAD + "description: '" + "x" * 99_000 + "'\n" + "# padding\n" * 100_000,
        None,
        "",
        f"the file is larger than the limit of {bounded.MAX_FILE_BYTES} bytes for a pipeline file",
    ),
    (
        "too-many-aliases",
        HEAD + "params:\n  one: &one 1\n  many: [" + ", ".join(["*one"] * (bounded.MAX_ALIASES + 1)) + "]\n",
        7,
        "params.many",
        f"more than {bounded.MAX_ALIASES} aliases (*name) in one file",
    ),
    (
        "too-many-nodes",
        HEAD + "tags: [" + ",".join(["a"] * bounded.MAX_NODES) + "]\n",
        5,
        "tags",
        f"more than {bounded.MAX_NODES} YAML nodes in one file",
    ),
    (
        "huge-scalar",
        HEAD + "description: " + "x" * (bounded.MAX_SCALAR_CHARS + 1) + "\n",
        5,
        "description",
        f"a value of {bounded.MAX_SCALAR_CHARS + 1} characters is longer than the limit of "
        f"{bounded.MAX_SCALAR_CHARS}",
    ),
    (
        "variable-multiplied-by-aliases",
        HEAD + "params:\n  v: &v '${HOSTILE_CORPUS_BIG}'\n  copies: [" + ", ".join(["*v"] * 50) + "]\n",
        7,
        "params.copies[39]",
        f"more than {bounded.MAX_EXPANDED_CHARS} characters after substituting variables",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "yaml_path", "message"), [case[1:] for case in GENERATED], ids=[c[0] for c in GENERATED]
)
def test_generated_hostile_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, line: int | None, yaml_path: str, message: str
) -> None:
    monkeypatch.setenv("HOSTILE_CORPUS_BIG", "y" * 100_000)
    path = tmp_path / "generated.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    assert [(i.file, i.line, i.path, i.message) for i in caught.value.issues] == [
        (str(path), line, yaml_path, message)
    ]


def test_validate_reports_every_corpus_file_without_a_traceback(corpus_env: pytest.MonkeyPatch) -> None:
    from airflow_provider_sync.factory.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(CORPUS)])
    printed = out.getvalue() + err.getvalue()
    assert code != 0
    assert "Traceback" not in printed
    count = len(corpus_files())
    assert f"{count} file(s) checked, {count} invalid" in printed
    assert all(f"✗ {path}\n" in printed for path in corpus_files())
