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

from airflow_provider_sync.config.resolve import Pipeline, is_defaults_file, load_pipeline
from airflow_provider_sync.errors import ConfigError

log = logging.getLogger(__name__)

PIPELINE_SUFFIXES = (".yaml", ".yml")
CONFIGS_ENV = "SYNC_DAG_CONFIGS"
BUNDLE_CLASSPATH = "airflow_provider_sync.factory.bundle.SyncPipelinesBundle"


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
    pipelines: dict[str, Pipeline] = {}
    for path in pipeline_files(folder):
        try:
            pipeline = load_pipeline(path)
            dag = build_dag(pipeline)
        except Exception as error:
            result.errors[str(path)] = as_config_error(path, error)
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
        pipelines[dag.dag_id] = pipeline
    from airflow_provider_sync.config.folder import shared_target_errors

    # Two pipelines writing one table: every writer is refused, in every file.
    shared = shared_target_errors(pipelines.values())
    for dag_id, pipeline in pipelines.items():
        if pipeline.path in shared:
            result.errors[pipeline.path] = shared[pipeline.path]
            result.dags.pop(dag_id)
    return result


def as_config_error(path: str | Path, error: Exception) -> ConfigError:
    """``error`` as a ConfigError naming ``path``: a bad file never surfaces as a bare traceback."""
    if isinstance(error, ConfigError):
        return error
    from airflow_provider_sync.errors import ConfigIssue

    return ConfigError(
        [ConfigIssue(str(path), "", None, f"cannot be loaded: {type(error).__name__}: {error}")]
    )


def load_pipeline_into(namespace: dict[str, Any], path: str | Path) -> Any:
    """Entry point of a one-file parse unit (see :mod:`airflow_provider_sync.factory.bundle`).

    Puts the DAG of ``path`` into ``namespace``. A broken file becomes the import error of this parse unit
    alone: added to the parse result (a message without traceback) while Airflow imports the file, raised
    otherwise, so the error is never lost.
    """
    from airflow_provider_sync.factory.builder import build_dag

    try:
        dag = build_dag(load_pipeline(path))
    except Exception as error:
        config_error = as_config_error(path, error)
        if _current_parse_result() is None:
            raise config_error from None
        report_import_errors(str(config_error))
        return None
    namespace[dag.dag_id] = dag
    return dag


def bundle_configs_paths() -> list[Path]:
    """The pipeline folders of every ``SyncPipelinesBundle`` in ``[dag_processor] dag_bundle_config_list``
    (its ``configs_path``, else ``$SYNC_DAG_CONFIGS`` as the bundle itself falls back to)."""
    try:
        from airflow.configuration import conf

        entries = conf.getjson("dag_processor", "dag_bundle_config_list") or []
    except Exception:  # an unreadable setting: the DAG processor reports it; nothing is served by us
        return []
    found: list[Path] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("classpath") != BUNDLE_CLASSPATH:
            continue
        configured = (entry.get("kwargs") or {}).get("configs_path") or os.environ.get(CONFIGS_ENV)
        if configured:
            found.append(Path(str(configured)).expanduser().resolve())
    return found


def served_by_bundle(folder: str | Path) -> bool:
    """Whether a ``SyncPipelinesBundle`` is configured over ``folder``. Its parse units load these files
    one by one, so a DAG file over the same folder must not load them again (every DAG would exist twice,
    in two bundles)."""
    return Path(folder).expanduser().resolve() in bundle_configs_paths()


def load_dags_into(namespace: dict[str, Any], folder: str | Path) -> FolderResult:
    """Entry point for a DAG file: put every valid DAG into ``namespace`` and report the broken files."""
    if served_by_bundle(folder):
        log.info("Pipeline files of %s are loaded by the SyncPipelinesBundle, one parse unit each", folder)
        return FolderResult()
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
    """The ``DagImportResult`` of the Airflow importer currently executing this module, if any.

    Airflow offers no public hook for a DAG file to report an import error without raising (raising adds
    a traceback to the message), so this finds the importer's result object on the call stack. Where it is
    not found (another Airflow version, a test, a worker), callers raise or log instead: the error is
    still reported for the right file, only with a traceback.
    """
    try:
        from airflow.dag_processing.importers.base import DagImportResult
    except ImportError:
        return None
    frame = sys._getframe(1)
    while frame is not None:
        for candidate in frame.f_locals.values():
            if isinstance(candidate, DagImportResult):
                return candidate
        frame = frame.f_back  # type: ignore[assignment]
    return None
