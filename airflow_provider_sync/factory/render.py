"""Text rendering of a DAG's task tree, for ``airflow-sync render``."""

from __future__ import annotations

from typing import Any


def _describe(task: Any) -> str:
    spec = getattr(task, "table_spec", None) or {}
    kind = type(task).__name__
    if kind == "IncrementalExtractOperator":
        source, incremental = spec["source"], spec["incremental"]
        what = source.get("table") or "query"
        cursor = f" by {incremental['column']}" if incremental.get("column") else ""
        return f"{kind}  {source['conn_id']}: {what} ({incremental['strategy']}{cursor})"
    if kind == "LoadOperator":
        target = spec["target"]
        keys = f" by {', '.join(target['keys'])}" if target.get("keys") else ""
        return f"{kind}  → {target['conn_id']}: {target['table']} ({target['mode']}{keys})"
    return kind


def render_dag(dag: Any) -> str:
    schedule = dag.schedule
    # A cron schedule is a CronDataIntervalTimetable (see builder._schedule): show its expression.
    expression = getattr(schedule, "expression", None)
    summary = "manual" if schedule is None else str(expression or schedule)
    lines = [f"DAG {dag.dag_id}  (schedule: {summary})"]
    groups: dict[str, list[Any]] = {}
    for task in dag.topological_sort():
        group = task.task_group.group_id if task.task_group and task.task_group.group_id else ""
        groups.setdefault(group, []).append(task)
    for group_index, (group, tasks) in enumerate(groups.items()):
        last_group = group_index == len(groups) - 1
        lines.append(f"{'└─' if last_group else '├─'} {group or '(no group)'}")
        indent = "   " if last_group else "│  "
        for index, task in enumerate(tasks):
            branch = "└─" if index == len(tasks) - 1 else "├─"
            name = task.task_id.removeprefix(f"{group}.")
            lines.append(f"{indent}{branch} {name:<18} {_describe(task)}")
    return "\n".join(lines)
