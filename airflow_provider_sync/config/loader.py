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

from airflow_provider_sync.errors import ConfigError, ConfigIssue

PathKey = tuple[str | int, ...]

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
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _UniqueKeySafeLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""


def _record(
    node: yaml.Node, path: PathKey, lines: dict[PathKey, int], issues: list[ConfigIssue], file: str
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                issues.append(
                    ConfigIssue(
                        file,
                        format_path((*path, key)),
                        line,
                        f"duplicate key {key!r} (first defined on line {seen[key]}); keep only one",
                    )
                )
            seen[key] = line
            child = (*path, key)
            lines[child] = line
            _record(value_node, child, lines, issues, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record(item, (*path, index), lines, issues, file)


def load_yaml_text(text: str, file: str) -> LoadedYaml:
    """Parse ``text`` safely; raise :class:`ConfigError` with the line of any syntax error."""
    loader = _UniqueKeySafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        raise ConfigError([ConfigIssue(file, "", line, f"YAML syntax error: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(file, "", None, f"YAML syntax error: {exc}")]) from None
    finally:
        loader.dispose()
    lines: dict[PathKey, int] = {}
    issues: list[ConfigIssue] = []
    if node is not None:
        _record(node, (), lines, issues, file)
    if issues:
        raise ConfigError(issues)
    return LoadedYaml(file=file, data=data, lines=lines)


def load_yaml_file(path: str | Path) -> LoadedYaml:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(str(path), "", None, f"cannot read file: {exc}")]) from None
    return load_yaml_text(text, str(path))


def substitute_env(loaded: LoadedYaml, environ: Mapping[str, str] | None = None) -> list[ConfigIssue]:
    """Replace ``${VAR}`` / ``${VAR:-default}`` inside string values, in place; ``$$`` is a literal ``$``.

    Substitution happens on parsed scalars only, never on the raw text, so a variable's value can never
    change the structure of the document (no YAML injection). Returns one issue per unset variable.
    """
    env = os.environ if environ is None else environ
    issues: list[ConfigIssue] = []

    def replace(text: str, path: PathKey) -> str:
        def one(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            issues.append(
                ConfigIssue(
                    loaded.file,
                    format_path(path),
                    loaded.line_of(path),
                    f"environment variable {name!r} is not set; set it, or give a default "
                    f"with ${{{name}:-default}} (write $$ for a literal $)",
                )
            )
            return match.group(0)

        return _ENV_REFERENCE.sub(one, text)

    def walk(value: Any, path: PathKey) -> Any:
        if isinstance(value, dict):
            return {key: walk(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, (*path, index)) for index, item in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            return replace(value, path)
        return value

    loaded.data = walk(loaded.data, ())
    return issues


def deep_merge(base: Any, override: Any) -> Any:
    """Merge mappings recursively; ``override`` wins. Lists and scalars are replaced, not merged."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return override
