"""``airflow-sync subset``: fill a pipeline's targets with a referentially complete, masked subset of its
sources, as its ``subset`` section describes (test data from production).

    airflow-sync subset --pipeline dag_configs/test_data_subset.yaml
    airflow-sync subset --pipeline test_data_subset --dry-run     # counts only, nothing written

Connections, mask secrets and keyrings come from Airflow (metadata database, secrets backend or
``AIRFLOW_CONN_*``). The output holds row counts, never values.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_sync.pipeline.subset import Resolvers


def _mask_secret(conn_id: str | None) -> bytes | None:
    from airflow.models.connection import Connection

    if not conn_id:
        return None
    password = Connection.get_connection_from_secrets(conn_id).password
    return password.encode() if password else None


def cli_resolvers() -> Resolvers:
    from airflow_provider_sync.factory.cli_crypto import database_of, keyring_of
    from airflow_provider_sync.pipeline.subset import Resolvers

    return Resolvers(info_of=database_of, secret_of=_mask_secret, keyring_of=keyring_of)


def cmd_subset(args: argparse.Namespace) -> int:
    from airflow_provider_sync.factory.cli_forget import find_pipeline
    from airflow_provider_sync.pipeline.subset import plan_subset, run_subset

    plan = plan_subset(find_pipeline(args.pipeline, args.configs))
    result = run_subset(plan, cli_resolvers(), dry_run=args.dry_run)
    if args.dry_run:
        print("dry run: nothing was written; these are the rows the subset would hold", file=sys.stderr)
    print(json.dumps(result.to_json(), indent=2))
    return 0


def add_subset_command(commands: Any) -> None:
    subset = commands.add_parser(
        "subset",
        help="replace a pipeline's targets by a referentially complete, masked subset of its sources",
    )
    subset.add_argument("--pipeline", required=True, help="pipeline file, or the dag_id of one in --configs")
    subset.add_argument(
        "--configs", help="folder of pipeline files (default: $SYNC_DAG_CONFIGS or dag_configs)"
    )
    subset.add_argument("--dry-run", action="store_true", help="print the row counts, write nothing")
    subset.set_defaults(handler=cmd_subset)
