"""End-to-end cost of protecting data in flight, against the raw bulk copy, on the local PostgreSQL.

    .venv/bin/python bench/sync_protected.py [--rows 200000] [--repeat 3] [--fused]

Builds the benchmark ``orders`` table (the one ``bench/sync_throughput.py`` uses) in a schema of its own,
then measures in the same run, each in a fresh subprocess:

* the raw baseline: binary ``COPY ... TO STDOUT`` piped into ``COPY ... FROM STDIN`` (no per-row Python);
* the protected sync: extract → validate (e-mail and amount rules) → mask (email, phone) → encrypt two
  columns (name with AES-256-GCM, note with AES-SIV) → upsert by id, through the step operators'
  own ``run`` (staged Arrow files between steps, as in a DAG run; no Airflow scheduler overhead);
* with ``--fused``, the same table with ``execution: fused``: ``FusedSyncOperator`` runs extract → steps →
  load in one process (scope ``partition``: no watermark commit or audit stage, as above), the steps
  streamed between the extract and the load.

The ratio is the protected sync's rows/s divided by the baseline's rows/s, per pair of runs made one
after the other (load on a shared machine drifts); the median pair is reported. The target is at least 0.3.
Module imports are done before the clock starts, as an Airflow worker pays them once per task.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sync_throughput import COLUMNS, CREATE_ORDERS, FILL_ORDERS, PG_URI, SOURCE_SCHEMA, peak_rss_mib

SOURCE, TARGET = "bench_protect_src", "bench_protect_dst"
TARGET_TABLE = f"{TARGET}.orders_protected"
KEYRING = json.dumps({"primary": "k1", "keys": {"k1": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}})
STEPS: list[dict[str, Any]] = [
    {"validate": {"on_invalid": "quarantine",
                  "rules": {"email": {"required": True, "email": True}, "amount": {"min": 0}}}},
    {"mask": {"columns": {"email": {"strategy": "email"}, "phone": {"strategy": "phone", "keep_last": 4}}}},
    {"encrypt": {"keyring_conn_id": "bench_keyring",
                 "columns": {"name": {"mode": "randomized"}, "note": {"mode": "deterministic"}}}},
]


class _TaskInstance:
    """Hands each step its upstream manifest, as XCom does in a DAG run."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def xcom_pull(self, task_ids: str) -> Any:
        return self.values[task_ids]


def table_spec() -> dict[str, Any]:
    """The table as the DAG builder hands it to the operators: resolved, defaults applied."""
    from airflow_provider_sync.config.resolve import resolve_table

    merged = {
        "source": {"conn_id": "bench_pg", "table": f"{SOURCE}.orders"},
        "target": {"conn_id": "bench_pg", "table": TARGET_TABLE, "mode": "upsert", "keys": ["id"]},
        "incremental": {"strategy": "timestamp", "column": "updated_at", "key": ["id"], "batch_size": 50_000},
        "steps": STEPS,
    }
    spec: dict[str, Any] = resolve_table("orders", merged).model_dump(mode="json")
    return spec


def task_raw(args: dict[str, Any]) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(PG_URI) as source, psycopg.connect(PG_URI) as target:
        target.execute(f"TRUNCATE {TARGET}.orders_raw")
        with (
            source.cursor().copy(f"COPY {SOURCE}.orders ({COLUMNS}) TO STDOUT (FORMAT binary)") as out,
            target.cursor().copy(f"COPY {TARGET}.orders_raw ({COLUMNS}) FROM STDIN (FORMAT binary)") as into,
        ):
            for chunk in out:
                into.write(chunk)
    return {"rows": args["rows"]}


def task_protected(args: dict[str, Any]) -> dict[str, Any]:
    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.operators.steps import EncryptOperator, MaskOperator, ValidateOperator
    from airflow_provider_sync.pipeline.extract import extract_to_staging
    from airflow_provider_sync.pipeline.load import load_from_staging
    from airflow_provider_sync.pipeline.specs import ExtractSpec, LoadSpec
    from airflow_provider_sync.staging.files import staging_root
    from airflow_provider_sync.staging.manifest import Manifest

    spec, info = table_spec(), {"dag_id": "bench_protected"}
    ti = _TaskInstance()
    context: Any = {"run_id": args["run_id"], "ti": ti}
    phases: dict[str, float] = {}
    clock = time.perf_counter()
    connection = ConnectionInfo.from_uri(PG_URI)
    extract = ExtractSpec(connection, table="orders", schema=SOURCE, cursor_column="updated_at",
                          key_columns=("id",), batch_size=50_000)
    root = staging_root(f"file://{args['staging']}")
    manifest = extract_to_staging(extract, None, root / "extract", dag_id="bench_protected",
                                  run_id=args["run_id"], table="orders")
    ti.values["extract"] = manifest.to_json()
    phases["extract"], clock = time.perf_counter() - clock, time.perf_counter()
    previous = "extract"
    for operator_class, entry in zip((ValidateOperator, MaskOperator, EncryptOperator), STEPS, strict=True):
        ((name, body),) = entry.items()
        operator = operator_class(task_id=name, table_spec=spec, pipeline_info=info, step=body,
                                  input_task_id=previous)
        ti.values[name] = operator.run(context).xcom
        previous = name
        phases[name], clock = time.perf_counter() - clock, time.perf_counter()
    final = Manifest.from_json(ti.values[previous])
    schema, table = TARGET_TABLE.split(".")
    result = load_from_staging(LoadSpec(connection, table=table, schema=schema, mode="upsert", keys=("id",)),
                               final)
    phases["load"] = time.perf_counter() - clock
    return {"rows": result.rows_staged, "loaded": result.rows_loaded, "phases": phases}


def task_fused(args: dict[str, Any]) -> dict[str, Any]:
    from airflow_provider_sync import watermarks
    from airflow_provider_sync.operators.fused import FusedSyncOperator
    from airflow_provider_sync.staging.manifest import Manifest

    # No Airflow API server answers here: every run reads from the start, like the per-step run above.
    watermarks.load_in_task = lambda *args, **kwargs: None
    info = {"dag_id": "bench_protected", "audit": {"enabled": False}}
    operator = FusedSyncOperator(task_id="orders.sync", table_spec=table_spec(), pipeline_info=info,
                                 scope="partition")
    streams = operator.streams()
    clock = time.perf_counter()
    # Audit records take the run from the task instance (none is written: audit is disabled).
    ti = SimpleNamespace(dag_id=info["dag_id"], run_id=args["run_id"], task_id=operator.task_id, try_number=1)
    context: Any = {"run_id": args["run_id"], "ti": ti}
    loaded = Manifest.from_json(operator.execute(context))
    phases = {"streamed" if streams else "fused": time.perf_counter() - clock}
    return {"rows": loaded.rows, "loaded": loaded.counters.get("rows_loaded"), "phases": phases}


TASKS = {"raw": task_raw, "protected": task_protected, "fused": task_fused}


def run_child(name: str, args: dict[str, Any]) -> None:
    started = time.perf_counter()
    import pandas  # noqa: F401  (pyarrow imports it on the first conversion of Python values)
    import psycopg  # noqa: F401
    import pyarrow as pa

    import airflow_provider_sync.core.encrypt
    import airflow_provider_sync.core.mask
    import airflow_provider_sync.core.validate
    import airflow_provider_sync.operators.fused
    import airflow_provider_sync.operators.fused_stream
    import airflow_provider_sync.operators.steps
    import airflow_provider_sync.pipeline.extract
    import airflow_provider_sync.pipeline.load  # noqa: F401

    pa.array([0])
    # The first object-storage write loads Airflow's plugins (lineage hooks).
    if name in ("protected", "fused"):
        from airflow_provider_sync.staging.files import StageWriter, staging_root

        warm_up = staging_root(f"file://{args['staging']}") / "warm-up"
        with StageWriter(warm_up, pa.schema([("x", pa.int8())])):
            pass
    imported = time.perf_counter()
    result = TASKS[name](args)
    result.update(
        seconds=time.perf_counter() - imported, import_seconds=imported - started, rss_mib=peak_rss_mib()
    )
    print(json.dumps(result))


def measure(name: str, **args: Any) -> dict[str, Any]:
    command = [sys.executable, __file__, "--task", name, "--task-args", json.dumps(args)]
    keyring = json.dumps({"conn_type": "generic", "password": KEYRING})
    env = {**os.environ, "AIRFLOW_CONN_BENCH_KEYRING": keyring, "SYNC_STAGING_BASE": f"file://{args['staging']}",
           "AIRFLOW_HOME": str(Path(args["staging"]) / "airflow-home"), "AIRFLOW_CONN_BENCH_PG": PG_URI}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"task {name} failed with exit code {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def prepare(rows: int) -> None:
    import psycopg

    with psycopg.connect(PG_URI, autocommit=True) as conn:
        for schema in (SOURCE, TARGET):
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(CREATE_ORDERS.replace(f"{SOURCE_SCHEMA}.", f"{SOURCE}."))
        conn.execute(FILL_ORDERS.replace(f"{SOURCE_SCHEMA}.", f"{SOURCE}."), [rows])
        conn.execute(f"CREATE INDEX orders_updated_at_id ON {SOURCE}.orders (updated_at, id)")
        conn.execute(f"VACUUM ANALYZE {SOURCE}.orders")
        conn.execute(f"CREATE TABLE {TARGET}.orders_raw (LIKE {SOURCE}.orders INCLUDING DEFAULTS "
                     "INCLUDING CONSTRAINTS, PRIMARY KEY (id))")


def reset_target() -> None:
    import psycopg

    with psycopg.connect(PG_URI, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TARGET_TABLE}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (median reported)")
    parser.add_argument("--fused", action="store_true",
                        help="also run the table with execution: fused (FusedSyncOperator) after each pair")
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--task-args", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.task:
        run_child(args.task, json.loads(args.task_args))
        return
    prepare(args.rows)
    raw, protected, fused = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-protected-") as staging:
        for attempt in range(args.repeat):
            raw.append(measure("raw", rows=args.rows, staging=staging))
            reset_target()
            protected.append(measure("protected", rows=args.rows, staging=staging, run_id=f"run{attempt}"))
            if args.fused:
                reset_target()
                fused.append(measure("fused", rows=args.rows, staging=staging, run_id=f"fused{attempt}"))
    raw_s = statistics.median(r["seconds"] for r in raw)
    protected_s = statistics.median(r["seconds"] for r in protected)
    fastest = min(protected, key=lambda r: r["seconds"])
    print(f"rows: {args.rows:,}   runs: {args.repeat} (medians)")
    print(f"raw COPY PG->PG           {raw_s:7.2f} s  {args.rows / raw_s:>10,.0f} rows/s  "
          f"RSS {max(r['rss_mib'] for r in raw):.0f} MiB")
    print(f"validate+mask+encrypt(2)  {protected_s:7.2f} s  {args.rows / protected_s:>10,.0f} rows/s  "
          f"RSS {max(r['rss_mib'] for r in protected):.0f} MiB")
    print("phases of the fastest protected run: "
          + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in fastest["phases"].items()))
    # Each protected run is paired with the raw run just before it, so load drift on a shared machine
    # cancels out within a pair; the median of the pairs is the figure to compare.
    pairs = sorted(r["seconds"] / p["seconds"] for r, p in zip(raw, protected, strict=True))
    print(f"ratio to raw COPY: {statistics.median(pairs):.2f}x median of pairs "
          f"(range {pairs[0]:.2f}-{pairs[-1]:.2f}; target >= 0.30x)")
    if fused:
        report_fused(args.rows, raw, protected, fused)


def report_fused(rows: int, raw: list[dict[str, Any]], protected: list[dict[str, Any]],
                 fused: list[dict[str, Any]]) -> None:
    """The fused runs, each against the raw and the per-step run of its own attempt."""
    fused_s = statistics.median(r["seconds"] for r in fused)
    mode = next(iter(fused[0]["phases"]))
    print(f"fused ({mode}){' ' * (13 - len(mode))}{fused_s:7.2f} s  {rows / fused_s:>10,.0f} rows/s  "
          f"RSS {max(r['rss_mib'] for r in fused):.0f} MiB")
    to_raw = sorted(r["seconds"] / f["seconds"] for r, f in zip(raw, fused, strict=True))
    speedup = sorted(p["seconds"] / f["seconds"] for p, f in zip(protected, fused, strict=True))
    print(f"fused ratio to raw COPY: {statistics.median(to_raw):.2f}x median of pairs "
          f"(range {to_raw[0]:.2f}-{to_raw[-1]:.2f})")
    print(f"fused vs per-step: {statistics.median(speedup):.2f}x faster, median of pairs "
          f"(range {speedup[0]:.2f}-{speedup[-1]:.2f})")


if __name__ == "__main__":
    main()
