"""``airflow-sync forget``: erase one data subject from everything a pipeline wrote (GDPR art. 17).

    airflow-sync forget --pipeline dag_configs/crm.yaml --subject-column customer_id --value 42
    airflow-sync forget --pipeline crm_to_warehouse --subject-column customer_id --value 42 --dry-run
    echo 42 | airflow-sync forget --pipeline crm.yaml --subject-column customer_id --value-stdin \\
        --mode pseudonymise

Connections and keyrings come from Airflow (metadata database, secrets backend or ``AIRFLOW_CONN_*``).
The output names the subject only by its keyed HMAC. ``--value-stdin`` keeps the value out of the shell
history and the process list.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_sync.config.resolve import Pipeline


def find_pipeline(pipeline: str, folder: str | Path | None = None) -> Pipeline:
    """The pipeline file ``pipeline``, or the file of ``folder`` (default: the configs folder) whose DAG id
    it is."""
    from airflow_provider_sync.config.resolve import load_pipeline
    from airflow_provider_sync.errors import TerminalError
    from airflow_provider_sync.factory.loader import configs_folder, pipeline_files

    if Path(pipeline).is_file():
        return load_pipeline(pipeline)
    root = Path(folder) if folder else configs_folder("dag_configs")
    for path in pipeline_files(root) if root.exists() else []:
        try:
            loaded = load_pipeline(path)
        except Exception:  # another file's problem is not this erasure's; `airflow-sync validate` shows it
            continue
        if loaded.dag_id == pipeline:
            return loaded
    raise TerminalError(f"no pipeline file {pipeline!r}, and no pipeline with that dag_id under {root}")


def _value(args: argparse.Namespace) -> str:
    value = sys.stdin.readline().strip() if args.value_stdin else (args.value or "").strip()
    if not value:
        raise SystemExit("give the subject's value with --value, or on standard input with --value-stdin")
    return value


def cmd_forget(args: argparse.Namespace) -> int:
    from airflow_provider_sync.factory.cli_crypto import database_of, keyring_of
    from airflow_provider_sync.operators.forget import plan_for_pipeline
    from airflow_provider_sync.pipeline.erasure import forget_subject

    value = _value(args)
    plan = plan_for_pipeline(
        find_pipeline(args.pipeline, args.configs),
        args.subject_column,
        info_of=database_of,
        keyring_of=keyring_of,
        keyring_conn_id=args.keyring_conn_id,
        tables=args.table or (),
    )
    result = forget_subject(plan, value, mode=args.mode, dry_run=args.dry_run)
    if args.dry_run:
        print("dry run: nothing was changed; these are the counts an erasure would remove", file=sys.stderr)
    print(json.dumps(result.to_json(), indent=2))
    return 0


def add_forget_command(commands: Any) -> None:
    forget = commands.add_parser(
        "forget", help="erase a data subject from a pipeline's tables, quarantine, keys and staging"
    )
    forget.add_argument("--pipeline", required=True, help="pipeline file, or the dag_id of one in --configs")
    forget.add_argument(
        "--configs", help="folder of pipeline files (default: $SYNC_DAG_CONFIGS or dag_configs)"
    )
    forget.add_argument("--subject-column", required=True, help="column naming the subject, e.g. customer_id")
    value = forget.add_mutually_exclusive_group(required=True)
    value.add_argument("--value", help="the subject's value (visible in shell history: see --value-stdin)")
    value.add_argument("--value-stdin", action="store_true", help="read the value from standard input")
    forget.add_argument(
        "--mode",
        choices=("delete", "pseudonymise"),
        default="delete",
        help="delete the rows (default), or keep them with the subject replaced by a random token and "
        "protected columns cleared",
    )
    forget.add_argument("--dry-run", action="store_true", help="print the counts, change nothing")
    forget.add_argument(
        "--keyring-conn-id", help="keyring for the subject's HMAC (default: the pipeline's encrypt step's)"
    )
    forget.add_argument("--table", action="append", help="only this table of the pipeline (repeatable)")
    forget.set_defaults(handler=cmd_forget)
