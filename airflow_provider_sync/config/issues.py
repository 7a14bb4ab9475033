"""Turn pydantic validation errors into located, actionable :class:`ConfigIssue` objects."""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from airflow_provider_sync.config.loader import LoadedYaml, PathKey, format_path, has_child
from airflow_provider_sync.errors import ConfigIssue

_MAX_SHOWN = 80
_SENSITIVE_KEY = re.compile(r"pass|secret|token|credential|api_?key|private|url|dsn|uri", re.IGNORECASE)
HIDDEN = "<value hidden>"
_URI_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")


def show_value(value: Any) -> str:
    if value is HIDDEN:
        return str(value)
    if isinstance(value, int) and value.bit_length() > 256:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    try:
        text = repr(value)
    except ValueError:  # a container holding an integer too long to print
        return "a value too large to show"
    text = _URI_PASSWORD.sub(r"\1***@", text)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _described(value: Any) -> str:
    """What a wrong value is, in YAML words: ``text 'abc'``, ``the number 5``, ``a list``."""
    if value is HIDDEN:
        return str(value)
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {show_value(value)}"
    if isinstance(value, str):
        return f"the text {show_value(value)}"
    if isinstance(value, dict):
        return f"a mapping {show_value(value)}"
    if isinstance(value, list):
        return f"a list {show_value(value)}"
    return "null" if value is None else show_value(value)


# Patterns of the models, said in words.
_PATTERN_HELP = {
    r"^[A-Za-z0-9_.\-]{1,250}$": "1 to 250 letters, digits, '_', '.' or '-'",
    r"^[A-Za-z_][A-Za-z0-9_]{0,63}$": "a letter or '_' followed by letters, digits or '_' (64 at most)",
    r"^[a-z][a-z0-9+.-]*://": "a URL such as s3://bucket/sync or file:///data/staging",
}
_TYPE_WORDS = {
    "string_type": "must be text",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "list_type": "must be a list ([a, b], or one '- item' per line)",
    **dict.fromkeys(
        ("date_parsing", "date_type", "datetime_parsing", "datetime_type", "date_from_datetime_parsing"),
        "must be a date such as 2025-01-31 or 2025-01-31T06:00:00Z",
    ),
}


def did_you_mean(word: str, allowed: list[str]) -> str:
    """``" Did you mean 'schedule'?"`` for a near miss, else an empty string."""
    close = difflib.get_close_matches(word, allowed, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """BaseModel classes reachable from a field annotation (via Optional, Union, list, dict, Annotated)."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, dict):
        args = typing.get_args(annotation)
        if origin is dict:
            args = args[1:]
        return [model for arg in args for model in _models_in(arg)]
    return []


def allowed_keys(model: type[BaseModel], path: PathKey) -> list[str]:
    """Keys allowed in the mapping at ``path`` below ``model`` (empty when unknown)."""
    candidates = [model]
    for part in path:
        if isinstance(part, int):
            continue
        following: list[type[BaseModel]] = []
        for candidate in candidates:
            for name, field in candidate.model_fields.items():
                if part in (name, field.alias):
                    following.extend(_models_in(field.annotation))
        candidates = following
        if not candidates:
            return []
    return sorted(
        {field.alias or name for candidate in candidates for name, field in candidate.model_fields.items()}
    )


def _data_path(loc: tuple[Any, ...], data: Any, keep_last: bool) -> PathKey:
    """Map a pydantic ``loc`` onto the YAML data, dropping union tags such as ``function-after[...]``."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        if has_child(node, part):
            node = node[part]
            path.append(part)
        elif keep_last and index == len(loc) - 1 and isinstance(part, (str, int)):
            path.append(part)
    return tuple(path)


def _message(error: Any, model: type[BaseModel], path: PathKey) -> str:
    kind, value, context = error["type"], error.get("input"), error.get("ctx") or {}
    if any(isinstance(part, str) and _SENSITIVE_KEY.search(part) for part in path):
        # Import errors and CLI output are widely visible: never echo what may be a credential.
        value = HIDDEN
    key = path[-1] if path else ""
    if kind == "extra_forbidden":
        allowed = allowed_keys(model, path[:-1])
        choices = ", ".join(allowed) or "(none)"
        return f"unknown key {key!r}.{did_you_mean(str(key), allowed)} Allowed keys: {choices}"
    if kind == "missing":
        return f"required key {key!r} is missing"
    if kind == "literal_error":
        return _literal_message(value, str(context.get("expected", "")))
    if kind == "union_tag_invalid":
        options = [tag.strip(" '") for tag in str(context.get("expected_tags", "")).split(",")]
        tag = context.get("tag")
        hint = did_you_mean(str(tag), options)
        expected_tags = context.get("expected_tags")
        return (
            f"{context.get('discriminator')} {tag!r} is not allowed; allowed values: {expected_tags}.{hint}"
        )
    if kind == "value_error":
        message = str(error["msg"]).removeprefix("Value error, ")
        shown = isinstance(value, (str, int, float)) and not isinstance(value, bool)
        if not shown or repr(value) in message:
            return message  # a whole mapping or a repr() is noise: the message names what is wrong
        return f"{message} (got {show_value(value)})"
    if kind == "string_pattern_mismatch":
        pattern = str(context.get("pattern"))
        wanted = _PATTERN_HELP.get(pattern, f"text matching {pattern}")
        return f"{show_value(value)} is not allowed here: use {wanted}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        allowed = allowed_keys(model, path)
        keys = f" with keys such as {', '.join(allowed)}" if allowed else ""
        return f"must be a mapping (key: value lines){keys}; got {_described(value)}"
    if kind in _TYPE_WORDS:
        return f"{_TYPE_WORDS[kind]}; got {_described(value)}"
    return f"{error['msg']} (got {show_value(value)})"


def _literal_message(value: Any, expected: str) -> str:
    options = [option.strip(" '") for option in expected.replace(" or ", ",").split(",") if option.strip()]
    if isinstance(value, str) and value in options and f"'{value}'" not in expected:
        return f"{show_value(value)} is not allowed; allowed values: {expected} (a number: write it unquoted)"
    hint = did_you_mean(value, options) if isinstance(value, str) else ""
    return f"{show_value(value)} is not allowed; allowed values: {expected}.{hint}"


def issues_from_validation(
    error: ValidationError, loaded: LoadedYaml, model: type[BaseModel], prefix: PathKey = ()
) -> list[ConfigIssue]:
    """One issue per distinct location; unions report only their first (most specific) member error."""
    issues: dict[PathKey, ConfigIssue] = {}
    for item in error.errors():
        keep_last = item["type"] in ("missing", "extra_forbidden")
        path = _data_path(item["loc"], _subtree(loaded.data, prefix), keep_last)
        full = (*prefix, *path)
        if full in issues:
            continue
        issues[full] = ConfigIssue(
            loaded.file, format_path(full), loaded.line_of(full), _message(item, model, path)
        )
    return sorted(issues.values(), key=lambda issue: issue.line or 0)


def _subtree(data: Any, prefix: PathKey) -> Any:
    for part in prefix:
        data = data[part]
    return data


def issues_from_merged(error: ValidationError, loaded: LoadedYaml, prefix: PathKey) -> list[ConfigIssue]:
    """Issues of a section validated again once file and table settings are merged (a table's strategy
    meeting the file's lag). Each points at the table's own setting when it has one, else at the file's."""
    from airflow_provider_sync.config import sections

    model: type[BaseModel] | None = getattr(sections, error.title, None)
    section = error.title.removesuffix("Config").lower() if model is not None else None
    issues: list[ConfigIssue] = []
    for item in error.errors():
        loc = tuple(part for part in item["loc"] if isinstance(part, (str, int)))
        path: PathKey = (section, *loc) if section else loc
        candidates = [(*prefix, *path), path] if prefix else [path]
        where = next((c for c in candidates if _exists(loaded.data, c)), candidates[0])
        message = _message(item, model or BaseModel, loc)
        issues.append(ConfigIssue(loaded.file, format_path(where), loaded.line_of(where), message))
    return issues


def _exists(data: Any, path: PathKey) -> bool:
    for part in path:
        if not has_child(data, part):
            return False
        data = data[part]
    return True


UNEXPECTED = "cannot be read"


def unexpected_issue(file: str, error: BaseException) -> ConfigIssue:
    """The last resort for an error no check anticipated: still one located line, never a traceback."""
    text = str(error)
    text = text if len(text) <= 200 else text[:197] + "..."
    return ConfigIssue(file, "", None, f"{UNEXPECTED}: {type(error).__name__}: {text}")
