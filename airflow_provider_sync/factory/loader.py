"""Load every pipeline file of a folder into DAGs, keeping one broken file from hiding the others.

Airflow records import errors per Python file. The DAG file in ``dags/`` loads many YAML files, so a broken
YAML must neither raise (which would drop every DAG of the folder) nor pass unnoticed. While the DAG
processor imports the file, :func:`report_import_errors` adds one import error to the file's parse result;
Airflow then shows it in the UI and in ``airflow dags list-import-errors`` while the valid DAGs load. Outside
the DAG processor (a worker, a test, the CLI) the problems are logged instead.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_sync.config.resolve import is_defaults_file, load_pipeline
from airflow_provider_sync.errors import ConfigError

log = logging.getLogger(__name__)

PIPELINE_SUFFIXES = (".yaml", ".yml")
CONFIGS_ENV = "SYNC_DAG_CONFIGS"


@dataclass
class FolderResult:
    dags: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, ConfigError] = field(default_factory=dict)

    def error_report(self) -> str:
        return "\n\n".join(str(error) for error in self.errors.values())


def pipeline_files(folder: str | Path) -> list[Path]:
    """Pipeline files of ``folder`` and its subfolders, sorted; defaults files are not pipelines."""
    root = Path(folder)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix in PIPELINE_SUFFIXES)
    return [path for path in files if not is_defaults_file(path) and not path.name.startswith(".")]


def configs_folder(default: str | Path) -> Path:
    return Path(os.environ.get(CONFIGS_ENV) or default)


def load_folder(folder: str | Path) -> FolderResult:
    from airflow_provider_sync.factory.builder import build_dag

    result = FolderResult()
    seen: dict[str, Path] = {}
    for path in pipeline_files(folder):
        try:
            dag = build_dag(load_pipeline(path))
        except ConfigError as error:
            result.errors[str(path)] = error
            continue
        if dag.dag_id in seen:
            from airflow_provider_sync.errors import ConfigIssue

            result.errors[str(path)] = ConfigError(
                [
                    ConfigIssue(
                        str(path),
                        "dag_id",
                        None,
                        f"dag_id {dag.dag_id!r} is already used by {seen[dag.dag_id]}; "
                        "dag ids must be unique",
                    )
                ]
            )
            continue
        seen[dag.dag_id] = path
        result.dags[dag.dag_id] = dag
    return result


def load_dags_into(namespace: dict[str, Any], folder: str | Path) -> FolderResult:
    """Entry point for a DAG file: put every valid DAG into ``namespace`` and report the broken files."""
    result = load_folder(folder)
    namespace.update(result.dags)
    if result.errors:
        report_import_errors(result.error_report())
    return result


def report_import_errors(message: str) -> bool:
    """Attach ``message`` as an import error of the DAG file being parsed; log it when not parsing."""
    parse_result = _current_parse_result()
    if parse_result is None:
        log.error("Some pipeline files are invalid and were not loaded:\n%s", message)
        return False
    from airflow.dag_processing.importers.base import DagImportError

    parse_result.errors.append(
        DagImportError(file_path=parse_result.file_path, message=message, error_type="config")
    )
    return True


def _current_parse_result() -> Any:
    """The ``DagImportResult`` of the Airflow importer currently executing this module, if any."""
    try:
        from airflow.dag_processing.importers.base import DagImportResult
    except ImportError:
        return None
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("result")
        if isinstance(candidate, DagImportResult):
            return candidate
        frame = frame.f_back  # type: ignore[assignment]
    return None
