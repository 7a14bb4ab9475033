"""Load a pipeline file end to end: YAML → defaults → env substitution → models → resolved tables.

Every problem of a file is collected before raising, so one ``ConfigError`` lists them all, each with file,
YAML path and line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from airflow_provider_sync.config.issues import issues_from_merged, issues_from_validation, unexpected_issue
from airflow_provider_sync.config.loader import (
    LoadedYaml,
    PathKey,
    deep_merge,
    format_path,
    has_child,
    load_yaml_file,
    substitute_env,
)
from airflow_provider_sync.config.pipeline import TABLE_SETTING_KEYS, pipeline_models, target_model
from airflow_provider_sync.config.resolved import (
    INCREMENTAL_DEFAULTS,
    TARGET_DEFAULTS,
    TableSpec,
    table_spec_model,
)
from airflow_provider_sync.config.sections import (
    IncrementalConfig,
    SourceConfig,
    StagingConfig,
)
from airflow_provider_sync.errors import ConfigError, ConfigIssue

DEFAULTS_FILE_NAMES = ("defaults.yaml", "_defaults.yaml", "defaults.yml", "_defaults.yml")


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline file."""

    path: str
    sha256: str
    model: BaseModel
    tables: list[TableSpec]

    @property
    def dag_id(self) -> str:
        return str(self.model.dag_id)  # type: ignore[attr-defined]


def is_defaults_file(path: Path) -> bool:
    return path.name in DEFAULTS_FILE_NAMES


def find_defaults(path: Path) -> Path | None:
    for name in DEFAULTS_FILE_NAMES:
        candidate = path.parent / name
        if candidate.is_file() and candidate.resolve() != path.resolve():
            return candidate
    return None


def load_pipeline(path: str | Path) -> Pipeline:
    """Validate one pipeline file (merged over the folder's defaults file) and resolve its tables.

    Raises only :class:`ConfigError`: whatever else goes wrong while reading one file is reported as that
    file's problem, never as a traceback (see :func:`unexpected_issue`)."""
    try:
        return _load_pipeline(Path(path))
    except ConfigError:
        raise
    except Exception as error:  # one file's failure, whatever it is, is that file's error
        raise ConfigError([unexpected_issue(str(path), error)]) from None


def _load_pipeline(path: Path) -> Pipeline:
    loaded = load_yaml_file(path)
    if not isinstance(loaded.data, dict):
        raise ConfigError(
            [
                ConfigIssue(
                    loaded.file,
                    "",
                    1,
                    "a pipeline file must be a YAML mapping (keys such as version, dag_id, source, target)",
                )
            ]
        )
    defaults = _load_defaults(path)
    if defaults is not None:
        loaded.data = deep_merge(defaults.data or {}, loaded.data)
    issues = substitute_env(loaded)
    # A value left as "${VAR}" also breaks its field's rules: its variable's issue says it all.
    substituted = {issue.path for issue in issues}
    file_model, _ = pipeline_models()
    try:
        model = file_model.model_validate(loaded.data)
    except ValidationError as error:
        found = issues_from_validation(error, loaded, file_model)
        issues.extend(issue for issue in found if issue.path not in substituted)
        raise ConfigError(_in_defaults(issues, loaded, defaults)) from None
    tables, table_issues = _resolve_tables(model, loaded)
    issues.extend(issue for issue in table_issues if issue.path not in substituted)
    if issues:
        raise ConfigError(_in_defaults(issues, loaded, defaults))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return Pipeline(path=str(path), sha256=sha, model=model, tables=tables)


def _load_defaults(path: Path) -> LoadedYaml | None:
    defaults_path = find_defaults(path)
    if defaults_path is None:
        return None
    defaults = load_yaml_file(defaults_path)
    if defaults.data is not None and not isinstance(defaults.data, dict):
        raise ConfigError([ConfigIssue(defaults.file, "", 1, "the defaults file must be a YAML mapping")])
    for key in defaults.data or {}:
        if key in ("dag_id", "tables"):
            line = defaults.line_of((key,))
            message = f"{key!r} cannot be set in a defaults file"
            raise ConfigError([ConfigIssue(defaults.file, key, line, message)])
    return defaults


def _in_defaults(
    issues: list[ConfigIssue], loaded: LoadedYaml, defaults: LoadedYaml | None
) -> list[ConfigIssue]:
    """Point an issue about a setting that only the defaults file gives at that file and its line."""
    if defaults is None:
        return issues
    own = {format_path(path) for path in loaded.lines}
    inherited = {format_path(path): line for path, line in defaults.lines.items() if path}
    inherited = {path: line for path, line in inherited.items() if path not in own}
    moved: list[ConfigIssue] = []
    for issue in issues:
        if issue.file == loaded.file and issue.path in inherited:
            issue = ConfigIssue(defaults.file, issue.path, inherited[issue.path], issue.message)
        moved.append(issue)
    return moved


def _settings(model: BaseModel) -> dict[str, Any]:
    return {key: value for key in TABLE_SETTING_KEYS if (value := _dump(getattr(model, key))) is not None}


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True, by_alias=True)
    if isinstance(value, list):
        return [_dump(item) for item in value]
    return value


def _resolve_tables(model: BaseModel, loaded: LoadedYaml) -> tuple[list[TableSpec], list[ConfigIssue]]:
    file_settings = _settings(model)
    staging: StagingConfig = model.staging  # type: ignore[attr-defined]
    tables_in_file = model.tables  # type: ignore[attr-defined]
    entries: list[tuple[PathKey, str | None, dict[str, Any]]]
    if tables_in_file is None:
        entries = [((), None, {})]
    else:
        if not tables_in_file:
            return [], [
                ConfigIssue(
                    loaded.file,
                    "tables",
                    loaded.line_of(("tables",)),
                    "'tables' is empty; list at least one table or remove the key",
                )
            ]
        entries = [
            (("tables", index), table.name, _settings(table)) for index, table in enumerate(tables_in_file)
        ]
    specs: list[TableSpec] = []
    issues: list[ConfigIssue] = []
    seen: dict[str, PathKey] = {}
    for prefix, name, own in entries:
        merged = {**file_settings, **{k: deep_merge(file_settings.get(k), v) for k, v in own.items()}}
        if "steps" in own:
            merged["steps"] = own["steps"]
        problems = _requirements(merged)
        for path, message in problems:
            where = (*prefix, *path) if _present(loaded.data, (*prefix, *path)) or prefix else path
            issues.append(ConfigIssue(loaded.file, format_path(where), loaded.line_of(where), message))
        if problems:
            continue
        try:
            spec = resolve_table(name, merged, staging)
        except ValidationError as error:  # the table's settings and the file's do not fit together
            issues.extend(issues_from_merged(error, loaded, prefix))
            continue
        if spec.name in seen:
            issues.append(
                ConfigIssue(
                    loaded.file,
                    format_path((*prefix, "name")),
                    loaded.line_of((*prefix, "name")),
                    f"duplicate table {spec.name!r} (also at {format_path(seen[spec.name])}); "
                    "table names must be unique within a file",
                )
            )
            continue
        seen[spec.name] = prefix
        specs.append(spec)
    return specs, issues


def _present(data: Any, path: PathKey) -> bool:
    for part in path:
        if has_child(data, part):
            data = data[part]
        else:
            return False
    return True


def _requirements(merged: dict[str, Any]) -> list[tuple[PathKey, str]]:
    """What a table needs once file and table settings are merged."""
    problems: list[tuple[PathKey, str]] = []
    source, target = merged.get("source", {}), merged.get("target", {})
    incremental = merged.get("incremental", {})
    if source.get("files"):
        problems.extend(_file_requirements(merged))
    elif not source.get("conn_id"):
        problems.append(
            (
                ("source", "conn_id"),
                "required key 'conn_id' is missing: name the Airflow connection to read from",
            )
        )
    if not source.get("table") and not source.get("query") and not source.get("files"):
        problems.append((("source",), "give 'table' or 'query' (or 'files') to say what to read"))
    if not target.get("conn_id"):
        problems.append(
            (
                ("target", "conn_id"),
                "required key 'conn_id' is missing: name the Airflow connection to write to",
            )
        )
    if not target.get("table") and not source.get("table"):
        kind = "files" if source.get("files") else "a query"
        problems.append((("target", "table"), f"required when the source is {kind}"))
    mode = target.get("mode", "upsert")
    if mode == "upsert" and not target.get("keys"):
        problems.append(
            (
                ("target", "keys"),
                "mode 'upsert' needs 'keys': the columns that identify a row "
                "(or use mode 'append' or 'replace')",
            )
        )
    deletes = merged.get("deletes", {})
    if deletes.get("soft_delete_column") and not deletes.get("keep_flagged") and mode != "upsert":
        problems.append(
            (
                ("deletes", "soft_delete_column"),
                f"deleting flagged rows needs mode 'upsert' with 'keys' (rows are deleted by key), not "
                f"{mode!r}; or set keep_flagged: true to load the flag instead",
            )
        )
    if deletes.get("reconcile") is not None:
        if source.get("query") or source.get("files") or incremental.get("strategy") == "cdc":
            problems.append(
                (
                    ("deletes", "reconcile"),
                    "reconcile compares a source table's keys with the target's: it needs source 'table' "
                    "(not 'query'), and strategy 'cdc' sees deletes without it",
                )
            )
        elif mode != "upsert":
            problems.append(
                (
                    ("deletes", "reconcile"),
                    f"reconcile deletes by key: use mode 'upsert' with keys, not {mode!r}",
                )
            )
    columns = source.get("columns")
    flag = deletes.get("soft_delete_column")
    if flag and columns and flag not in columns and incremental.get("strategy") != "cdc":
        problems.append(
            (("deletes", "soft_delete_column"), f"{flag!r} must also be listed in source.columns")
        )
    if incremental.get("lag") and mode == "append":
        problems.append(
            (
                ("incremental", "lag"),
                "lag re-reads rows already loaded, which mode 'append' would "
                "insert twice; use mode 'upsert' (or drop lag)",
            )
        )
    strategy = incremental.get("strategy", "full")
    if strategy == "cdc":
        problems.extend(_cdc_requirements(merged))
    elif strategy != "full":
        if not incremental.get("column"):
            problems.append(
                (
                    ("incremental", "column"),
                    f"strategy {strategy!r} needs 'column': the cursor "
                    "column whose growth marks new or changed rows",
                )
            )
        if not incremental.get("key") and not target.get("keys"):
            problems.append(
                (
                    ("incremental", "key"),
                    "give 'key' (tie-break columns) or target 'keys', so rows "
                    "sharing a cursor value are never skipped between batches",
                )
            )
    elif incremental.get("mode") == "interval":
        problems.append(
            (("incremental", "mode"), "mode 'interval' needs a strategy with a cursor column, not 'full'")
        )
    return problems


#: Stands in for ``source.conn_id`` of a file source without ``files.conn_id`` (local files, or a store's
#: own credentials): the resolved source names a connection, and this one is never looked up.
FILE_SOURCE_CONN_ID = "local_files"


def _file_requirements(merged: dict[str, Any]) -> list[tuple[PathKey, str]]:
    """What ``source.files`` needs: a strategy that fits ``incremental_by``, no table-only features."""
    problems: list[tuple[PathKey, str]] = []
    files, incremental = merged["source"]["files"], merged.get("incremental", {})
    by = files.get("incremental_by", "file") if isinstance(files, dict) else "file"
    strategy = incremental.get("strategy", "full")
    if strategy == "cdc":
        problems.append(
            (("incremental", "strategy"), "files have no change log: use strategy full or a cursor")
        )
    elif by == "file" and strategy != "full":
        problems.append(
            (
                ("incremental", "strategy"),
                f"files.incremental_by 'file' picks new or changed files, so strategy must be 'full' (not "
                f"{strategy!r}); or set files.incremental_by: cursor to read rows past incremental.column",
            )
        )
    elif by == "cursor" and strategy == "full":
        problems.append(
            (
                ("incremental", "strategy"),
                "files.incremental_by 'cursor' needs strategy timestamp, sequence or version with a column",
            )
        )
    if incremental.get("mode") == "interval":
        problems.append((("incremental", "mode"), "file sources read past the watermark, not data intervals"))
    if merged.get("wait_for_rows"):
        problems.append((("wait_for_rows",), "wait_for_rows probes a source table; remove it for files"))
    if isinstance(files, dict) and "csv" in files and files.get("format") != "csv":
        problems.append((("source", "files", "csv"), "csv options apply to format 'csv' only; remove them"))
    return problems


#: The steps a change stream can pass through: they rewrite values column by column, so the change rows'
#: keys, operations and positions reach the target untouched.
CDC_STEPS = ("mask", "encrypt")


def _cdc_requirements(merged: dict[str, Any]) -> list[tuple[PathKey, str]]:
    """What ``strategy: cdc`` needs: a table (not a query), keys to apply changes by, value-only steps."""
    problems: list[tuple[PathKey, str]] = []
    source, target, incremental = merged.get("source", {}), merged.get("target", {}), merged["incremental"]
    if source.get("query"):
        problems.append((("source", "query"), "strategy 'cdc' reads a table's change log: give 'table'"))
    if incremental.get("column"):
        problems.append((("incremental", "column"), "strategy 'cdc' needs no cursor column; remove it"))
    if incremental.get("mode") == "interval":
        problems.append((("incremental", "mode"), "strategy 'cdc' reads the change log, not data intervals"))
    if merged.get("wait_for_rows"):
        problems.append(
            (("wait_for_rows",), "strategy 'cdc' reads whatever the change log holds: remove wait_for_rows")
        )
    mode = target.get("mode", "upsert")
    if mode != "upsert":
        problems.append(
            (("target", "mode"), f"strategy 'cdc' applies changes by key: use mode 'upsert', not {mode!r}")
        )
    deletes = merged.get("deletes", {})
    if deletes.get("soft_delete_column") and not deletes.get("keep_flagged"):
        problems.append(
            (
                ("deletes", "keep_flagged"),
                "with strategy 'cdc' deletes come from the change log; to keep deleted rows in the target, "
                "flagged in soft_delete_column, set keep_flagged: true",
            )
        )
    for index, step in enumerate(merged.get("steps") or []):
        kind = next(iter(step), "") if isinstance(step, dict) else ""
        if kind not in CDC_STEPS:
            problems.append(
                (
                    ("steps", index),
                    f"strategy 'cdc' passes changes through {' and '.join(CDC_STEPS)} steps only, not "
                    f"{kind!r} (a delete carries only its key)",
                )
            )
    return problems


def resolve_table(
    name: str | None, merged: dict[str, Any], staging: StagingConfig | None = None
) -> TableSpec:
    """The resolved table of merged settings (file and table levels already combined): defaults
    applied, each section validated. Raises pydantic's ValidationError for settings that do not fit."""
    # Each section is validated by its YAML model first, so an error names the section it belongs to.
    source_raw = merged["source"]
    if source_raw.get("files") and not source_raw.get("conn_id"):
        files_conn = source_raw["files"].get("conn_id") if isinstance(source_raw["files"], dict) else None
        source_raw = {**source_raw, "conn_id": files_conn or FILE_SOURCE_CONN_ID}
    source = SourceConfig.model_validate(source_raw)
    target_raw = {**TARGET_DEFAULTS, **merged["target"]}
    target_raw.setdefault("table", (source.table or "").split(".")[-1])
    target = target_model().model_validate(target_raw)
    incremental_raw = {**INCREMENTAL_DEFAULTS, "key": target.keys or [], **merged.get("incremental", {})}
    incremental = IncrementalConfig.model_validate(incremental_raw)
    return table_spec_model().model_validate(
        {
            "name": name or str(target.table).split(".")[-1],
            "source": _dump(source),
            "target": _dump(target),
            "incremental": _dump(incremental),
            "deletes": merged.get("deletes", {}),
            "steps": merged.get("steps", []),
            "pool": merged.get("pool"),
            "execution": merged.get("execution") or "per_step",
            "wait_for_rows": merged.get("wait_for_rows"),
            "staging": staging or StagingConfig(),
        }
    )
