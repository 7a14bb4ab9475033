"""Checks across the pipeline files of one folder: two pipelines must not write one target table.

Two pipelines loading the same table (from two files, or twice in one file) each believe they own it: in
append mode every row arrives twice, in replace mode each run throws the other's rows away. Such a pair is
refused unless every writer of the table says ``target.shared: true``, on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable

from airflow_provider_sync.config.loader import format_path
from airflow_provider_sync.config.resolve import Pipeline
from airflow_provider_sync.errors import ConfigError, ConfigIssue

TargetKey = tuple[str, str]


def _writers(pipelines: Iterable[Pipeline]) -> dict[TargetKey, list[tuple[Pipeline, int]]]:
    writers: dict[TargetKey, list[tuple[Pipeline, int]]] = {}
    for pipeline in pipelines:
        for index, table in enumerate(pipeline.tables):
            key = (table.target.conn_id, table.target.table)
            writers.setdefault(key, []).append((pipeline, index))
    return writers


def _where(pipeline: Pipeline, index: int) -> tuple[str, int | None]:
    """YAML path and line of a table's target (``tables[2].target`` or the file's ``target``)."""
    from airflow_provider_sync.config.loader import load_yaml_file

    has_tables = getattr(pipeline.model, "tables", None) is not None
    candidates = [("tables", index, "target", "table"), ("tables", index, "target"), ("tables", index)]
    candidates = (
        [*candidates, ("target", "table"), ("target",)] if has_tables else [("target", "table"), ("target",)]
    )
    try:
        lines = load_yaml_file(pipeline.path).lines
    except ConfigError:
        lines = {}
    for path in candidates:
        if path in lines:
            return format_path(path), lines[path]
    return format_path(candidates[0]), None


def shared_target_issues(pipelines: Iterable[Pipeline]) -> list[ConfigIssue]:
    """One issue per table that shares its target with another table without ``shared: true``."""
    issues: list[ConfigIssue] = []
    for (conn_id, table_name), writers in _writers(pipelines).items():
        if len(writers) < 2 or all(p.tables[i].target.shared for p, i in writers):
            continue
        places = [(pipeline, index, *_where(pipeline, index)) for pipeline, index in writers]
        for pipeline, index, path, line in places:
            others = "; ".join(
                f"{other.path}:{other_line or '?'} at {other_path} (DAG {other.dag_id!r}, table "
                f"{other.tables[other_index].name!r})"
                for other, other_index, other_path, other_line in places
                if (other, other_index) != (pipeline, index)
            )
            issues.append(
                ConfigIssue(
                    pipeline.path,
                    path,
                    line,
                    f"target table {table_name!r} on connection {conn_id!r} is also written by {others}; "
                    "two writers would double or overwrite each other's rows. Give each its own table, "
                    "or set 'shared: true' in the target of every writer if they share it on purpose",
                )
            )
    return issues


def shared_target_errors(pipelines: Iterable[Pipeline]) -> dict[str, ConfigError]:
    """Per file, the error of every pipeline that shares a target without saying so. All writers of the
    table are refused, since which of them is the right one is not known."""
    by_file: dict[str, list[ConfigIssue]] = {}
    for issue in shared_target_issues(pipelines):
        by_file.setdefault(issue.file, []).append(issue)
    return {file: ConfigError(issues) for file, issues in by_file.items()}
