"""Safe YAML loading that remembers where every value came from.

``yaml.safe_load`` loses line numbers; here the document is composed into nodes once with the safe loader,
turned into plain Python data, and every mapping key and sequence item gets its 1-based line recorded under
its path (``("tables", 2, "incremental", "strategy")``). Error messages can then point at the exact line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airflow_provider_sync.config.bounded import (
    MAX_EXPANDED_CHARS,
    MAX_FILE_BYTES,
    MERGE_TAG,
    BoundedSafeLoader,
    LimitError,
    check_expanded,
)
from airflow_provider_sync.config.bounded import (
    PathKey as PathKey,  # re-exported: the path type of every located issue
)
from airflow_provider_sync.config.yaml_messages import (
    CONSTRUCTION_ERRORS,
    encodable,
    key_message,
    syntax_message,
    unreadable_message,
)
from airflow_provider_sync.errors import ConfigError, ConfigIssue

_ENV_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class LoadedYaml:
    """Plain data of one YAML document plus the line of every path in it."""

    file: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: PathKey) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


def has_child(node: Any, part: Any) -> bool:
    """Whether ``node[part]`` exists in parsed YAML data (a mapping key or a list index)."""
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def format_path(path: PathKey) -> str:
    """``("tables", 2, "steps", 0)`` → ``tables[2].steps[0]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        # Keys are shown in terminals and logs: control characters (NUL, ANSI escapes) are shown escaped.
        name = str(part) if str(part).isprintable() else repr(str(part))[1:-1]
        text += f".{name}" if text else name
    return text


class _ValueProblem(Exception):
    """A scalar YAML accepted but Python cannot build (an impossible date, an oversized integer)."""

    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.node = node


# Python refuses to print an int of more than 4300 digits; 14,000 bits is about that size.
_MAX_INT_BITS = 14_000


class _PipelineLoader(BoundedSafeLoader):
    """Bounded SafeLoader whose scalar conversions fail as located problems, never as bare exceptions."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            value = super().construct_object(node, deep)
        except (yaml.YAMLError, _ValueProblem):
            raise
        except CONSTRUCTION_ERRORS as exc:
            raise _ValueProblem(node, unreadable_message(node, exc)) from None
        if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
            raise _ValueProblem(node, "an integer of more than 4300 digits is far beyond any setting")
        if isinstance(value, str) and not encodable(value):
            raise _ValueProblem(
                node,
                "the text holds an escaped lone surrogate (such as \\ud800), which is not a character and "
                "cannot be stored; remove it",
            )
        return value


def _record(
    node: yaml.Node,
    path: PathKey,
    lines: dict[PathKey, int],
    issues: dict[int, ConfigIssue],
    file: str,
    node_paths: dict[int, PathKey],
) -> None:
    """Record the line of every path (the first place wins) and report duplicate keys.

    Keys brought in by a merge key (``<<: *defaults``) are recorded after the mapping's own keys, so an
    explicit key overrides a merged one without being a duplicate, as YAML's merge semantics say.
    """
    node_paths.setdefault(id(node), path)
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        merged: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merged.append(value_node)
                continue
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "<complex key>"
            line = key_node.start_mark.line + 1
            child = (*path, key)
            key_problem = key_message(key_node)
            if key_problem is not None:
                issues.setdefault(id(key_node), ConfigIssue(file, format_path(child), line, key_problem))
            if key in seen and id(key_node) not in issues:
                issues[id(key_node)] = ConfigIssue(
                    file,
                    format_path(child),
                    line,
                    f"duplicate key {key!r} (first defined on line {seen[key]}); keep only one",
                )
            seen.setdefault(key, line)
            lines.setdefault(child, line)
            _record(value_node, child, lines, issues, file, node_paths)
        for value_node in merged:
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                _record(source, path, lines, issues, file, node_paths)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            if id(item) in node_paths:  # an alias: its node starts at the anchor, far from this use
                lines.setdefault((*path, index), node.start_mark.line + 1)
            _record(item, (*path, index), lines, issues, file, node_paths)


def _reader_line(text: str, exc: yaml.reader.ReaderError) -> int:
    return text.count("\n", 0, max(exc.position, 0)) + 1


def _compose(text: str, file: str) -> tuple[_PipelineLoader, yaml.Node | None]:
    loader: _PipelineLoader | None = None
    try:
        loader = _PipelineLoader(text)  # the reader refuses control characters right here
        node = loader.get_single_node()
        if node is not None:
            check_expanded(node)
        return loader, node
    except LimitError as exc:
        issue = ConfigIssue(file, format_path(exc.path), exc.line, exc.message)
    except yaml.reader.ReaderError as exc:
        character = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        message = f"the file holds a character YAML does not allow ({character}); remove it"
        issue = ConfigIssue(file, "", _reader_line(text, exc), message)
    except yaml.MarkedYAMLError as exc:
        issue = _syntax_issue(exc, file)
    except yaml.YAMLError as exc:
        issue = ConfigIssue(file, "", None, f"YAML syntax error: {exc}")
    if loader is not None:
        loader.dispose()
    raise ConfigError([issue])


def _syntax_issue(exc: yaml.MarkedYAMLError, file: str) -> ConfigIssue:
    line, message = syntax_message(exc)
    return ConfigIssue(file, "", line, message)


def load_yaml_text(text: str, file: str) -> LoadedYaml:
    """Parse ``text`` safely within the limits of :mod:`.bounded`; every problem is a located ConfigError."""
    loader, node = _compose(text, file)
    lines: dict[PathKey, int] = {}
    duplicates: dict[int, ConfigIssue] = {}
    node_paths: dict[int, PathKey] = {}
    try:
        if node is None:
            return LoadedYaml(file=file, data=None, lines=lines)
        _record(node, (), lines, duplicates, file, node_paths)
        if duplicates:  # before building: a list as a key cannot even be built
            raise ConfigError(sorted(duplicates.values(), key=lambda issue: issue.line or 0))
        data = loader.construct_document(node)
    except _ValueProblem as exc:
        path = node_paths.get(id(exc.node), ())
        line = exc.node.start_mark.line + 1
        raise ConfigError([ConfigIssue(file, format_path(path), line, str(exc))]) from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_issue(exc, file)]) from None
    finally:
        loader.dispose()
    return LoadedYaml(file=file, data=data, lines=lines)


def load_yaml_file(path: str | Path) -> LoadedYaml:
    """Read and parse one file; a file over :data:`MAX_FILE_BYTES` is refused without being read whole."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), "", None, f"cannot read file: {exc}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        message = f"the file is larger than the limit of {MAX_FILE_BYTES} bytes for a pipeline file"
        raise ConfigError([ConfigIssue(str(path), "", None, message)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        message = (
            f"the file is not UTF-8 text (byte {raw[exc.start]:#04x} cannot be decoded); save it as UTF-8"
        )
        raise ConfigError([ConfigIssue(str(path), "", line, message)]) from None
    return load_yaml_text(text, str(path))


# Values of a pipeline file show in the Airflow UI, in logs and in error messages: variables that hold
# Airflow's own settings, connections or anything named like a secret are never substituted into them.
_PROTECTED_ENV = re.compile(
    r"^AIRFLOW(__|_CONN_|_VAR_)|PASSW|SECRET|TOKEN|FERNET|PRIVATE|CREDENTIAL|API_?KEY", re.IGNORECASE
)


class _Substitution:
    def __init__(self, loaded: LoadedYaml, env: Mapping[str, str]) -> None:
        self.loaded, self.env = loaded, env
        self.issues: list[ConfigIssue] = []
        self.budget = MAX_EXPANDED_CHARS

    def issue(self, path: PathKey, message: str) -> None:
        self.issues.append(
            ConfigIssue(self.loaded.file, format_path(path), self.loaded.line_of(path), message)
        )

    def variable(self, match: re.Match[str], path: PathKey) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if _PROTECTED_ENV.search(name):
            self.issue(
                path,
                f"environment variable {name!r} may hold a secret or an Airflow setting and is not "
                "substituted into pipeline files (their values show in the UI and in logs); "
                "reference an Airflow connection or Variable instead",
            )
            return match.group(0)
        if default is not None and "${" in default:
            self.issue(
                path,
                f"the default of ${{{name}:-...}} refers to another variable, which is not substituted; "
                "give a plain default",
            )
            return match.group(0)
        if name in self.env:
            return self.env[name]
        if default is not None:
            return default
        self.issue(
            path,
            f"environment variable {name!r} is not set; set it, or give a default "
            f"with ${{{name}:-default}} (write $$ for a literal $)",
        )
        return match.group(0)

    def text(self, value: str, path: PathKey) -> str:
        result = _ENV_REFERENCE.sub(lambda match: self.variable(match, path), value)
        self.budget -= len(result)
        if self.budget < 0:
            # Aliases share one string many times over; a large variable must not multiply with them.
            self.issue(path, f"more than {MAX_EXPANDED_CHARS} characters after substituting variables")
            raise ConfigError(self.issues)
        return result

    def walk(self, value: Any, path: PathKey) -> Any:
        if isinstance(value, dict):
            return {key: self.walk(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.walk(item, (*path, index)) for index, item in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            return self.text(value, path)
        return value


def substitute_env(loaded: LoadedYaml, environ: Mapping[str, str] | None = None) -> list[ConfigIssue]:
    """Replace ``${VAR}`` / ``${VAR:-default}`` inside string values, in place; ``$$`` is a literal ``$``.

    Substitution happens on parsed scalars only, never on the raw text, so a variable's value can never
    change the structure of the document (no YAML injection). Returns one issue per unset or protected
    variable.
    """
    substitution = _Substitution(loaded, os.environ if environ is None else environ)
    loaded.data = substitution.walk(loaded.data, ())
    return substitution.issues


def deep_merge(base: Any, override: Any) -> Any:
    """Merge mappings recursively; ``override`` wins. Lists and scalars are replaced, not merged."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return override
