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
from airflow_provider_sync.config.requirements import FILE_SOURCE_CONN_ID, table_requirements
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
        problems = table_requirements(merged)
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
    if source.partitions is not None and source.partitions.column is None and incremental.key:
        column = incremental.key[0]  # the requirements allow a missing column only with one key column
        source = source.model_copy(
            update={"partitions": source.partitions.model_copy(update={"column": column})}
        )
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
