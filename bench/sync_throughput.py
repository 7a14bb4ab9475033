"""End-to-end throughput of the sync engine against raw bulk copies, on the real local servers.

    .venv/bin/python bench/sync_throughput.py [--rows 1000000] [--repeat 1] [--no-mysql] [--dag]

Builds an ``orders`` table of ``--rows`` rows in PostgreSQL, then measures in the same run:

* the raw baseline PG->PG: binary ``COPY ... TO STDOUT`` piped into ``COPY ... FROM STDIN`` (no per-row
  Python), and our engine: ``extract_to_staging`` + ``load_from_staging`` (upsert by id);
* PG->MariaDB: ``LOAD DATA LOCAL INFILE`` fed from a ``COPY`` text stream through a named pipe, against the
  engine's load into MariaDB of the same staged extract;
* an incremental run after 1% of the rows changed (extract after the first run's watermark + upsert);
* with ``--dag``, the same PG->PG sync through the generated DAG under ``airflow dags test`` (a pipeline
  YAML in a temporary ``SYNC_DAG_CONFIGS``), twice: full, then after another 1% changed; per-task
  durations come from the metadata database and from Airflow's log.

Every measured task runs in a fresh subprocess, so its peak RSS (VmHWM) is its own. Ratios are rows/s
divided by the raw baseline's rows/s in the same run; compare ratios, as absolute figures drift.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PG_URI = os.environ.get("BENCH_PG_URI", "postgresql://postgres:postgres@127.0.0.1:5432/sync_test")
MYSQL_URI = os.environ.get("BENCH_MYSQL_URI", "mysql://sync:sync@127.0.0.1:3306/sync_test")
SOURCE_SCHEMA, TARGET_SCHEMA, DAG_SCHEMA = "bench_src", "bench_dst", "bench_dag"
DAG_FUSED_SCHEMA = "bench_dag_fused"
MYSQL_TABLE, MYSQL_RAW_TABLE = "bench_orders", "bench_orders_raw"
COLUMNS = "id, email, phone, name, amount, status, created_at, updated_at, note"

CREATE_ORDERS = f"""
CREATE TABLE {SOURCE_SCHEMA}.orders (
    id bigint PRIMARY KEY, email text, phone text, name text, amount numeric(12,2), status text,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, note varchar(80)
)"""
# Deterministic rows; every third row shares its updated_at with its neighbours (cursor ties).
FILL_ORDERS = f"""
INSERT INTO {SOURCE_SCHEMA}.orders
SELECT g, 'user' || g || '@example.com', '+1-555-' || lpad((g %% 10000000)::text, 7, '0'),
       'Name ' || left(md5(g::text), 12), ((g * 7919) %% 10000000) / 100.0, (ARRAY['new','paid','shipped',
       'cancelled'])[1 + g %% 4], timestamptz '2025-01-01 00:00:00+00' + g * interval '1.5 second',
       timestamptz '2025-06-01 00:00:00+00' + (g / 3) * interval '1 second'
           + (g %% 7) * interval '1 microsecond',
       rpad(md5(g::text) || ' ' || md5((g + 1)::text), 80, '.')
FROM generate_series(1::bigint, %s) AS g"""


# --------------------------------------------------------------------------- measured tasks (children)
def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def task_raw_pg(args: dict[str, Any]) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(PG_URI) as source, psycopg.connect(PG_URI) as target:
        target.execute(f"TRUNCATE {TARGET_SCHEMA}.orders_raw")
        with (
            source.cursor().copy(f"COPY {SOURCE_SCHEMA}.orders ({COLUMNS}) TO STDOUT (FORMAT binary)") as out,
            target.cursor().copy(
                f"COPY {TARGET_SCHEMA}.orders_raw ({COLUMNS}) FROM STDIN (FORMAT binary)"
            ) as into,
        ):
            for chunk in out:
                into.write(chunk)
    return {"rows": args["rows"]}


def task_raw_mysql(args: dict[str, Any]) -> dict[str, Any]:
    import MySQLdb
    import psycopg

    select = (
        f"SELECT id, email, phone, name, amount, status, created_at AT TIME ZONE 'UTC', "
        f"updated_at AT TIME ZONE 'UTC', note FROM {SOURCE_SCHEMA}.orders"
    )
    with tempfile.TemporaryDirectory() as folder:
        pipe = os.path.join(folder, "rows.tsv")
        os.mkfifo(pipe)

        def feed() -> None:
            with (
                psycopg.connect(PG_URI) as source,
                open(pipe, "wb") as sink,
                source.cursor().copy(f"COPY ({select}) TO STDOUT") as out,
            ):
                for chunk in out:
                    sink.write(chunk)

        feeder = threading.Thread(target=feed)
        feeder.start()
        conn = _mysql_connect(MySQLdb)
        cursor = conn.cursor()
        cursor.execute(f"TRUNCATE TABLE {MYSQL_RAW_TABLE}")
        cursor.execute(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE {MYSQL_RAW_TABLE} CHARACTER SET utf8mb4", [pipe]
        )
        conn.commit()
        conn.close()
        feeder.join()
    return {"rows": args["rows"]}


def _extract_spec() -> Any:
    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.pipeline.specs import ExtractSpec

    return ExtractSpec(
        ConnectionInfo.from_uri(PG_URI),
        table="orders",
        schema=SOURCE_SCHEMA,
        cursor_column="updated_at",
        key_columns=("id",),
        batch_size=int(os.environ.get("BENCH_BATCH_SIZE", "50000")),
    )


def task_extract(args: dict[str, Any]) -> dict[str, Any]:
    from airflow_provider_sync.pipeline.extract import extract_to_staging, manifest_watermark
    from airflow_provider_sync.staging.manifest import Manifest

    lower = None
    if args.get("after"):
        previous = Manifest.from_json(json.loads(Path(args["after"]).read_text()))
        lower = manifest_watermark(previous, None)
    manifest = extract_to_staging(
        _extract_spec(), lower, Path(args["staging"]), dag_id="bench", run_id=args["run_id"], table="orders"
    )
    Path(args["manifest"]).write_text(json.dumps(manifest.to_json()))
    return {"rows": manifest.rows}


def task_load(args: dict[str, Any]) -> dict[str, Any]:
    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.pipeline.load import load_from_staging
    from airflow_provider_sync.pipeline.specs import LoadSpec
    from airflow_provider_sync.staging.manifest import Manifest

    manifest = Manifest.from_json(json.loads(Path(args["manifest"]).read_text()))
    mysql = args["target"] == "mysql"
    spec = LoadSpec(
        ConnectionInfo.from_uri(MYSQL_URI if mysql else PG_URI),
        table=MYSQL_TABLE if mysql else "orders",
        schema=None if mysql else TARGET_SCHEMA,
        mode="upsert",
        keys=("id",),
    )
    result = load_from_staging(spec, manifest)
    return {"rows": result.rows_staged, "inserted": result.inserted, "updated": result.updated}


def stream_extract_into_load(args: dict[str, Any], lower: Any) -> dict[str, Any]:
    """The extract (after ``lower``: a watermark, a partition's range, or None) on a thread, each batch
    handed to the load in this process, as a fused table runs."""
    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.pipeline.extract import extract_to_staging
    from airflow_provider_sync.pipeline.load import load_from_staging
    from airflow_provider_sync.pipeline.specs import LoadSpec
    from airflow_provider_sync.pipeline.stream import BatchChannel
    from airflow_provider_sync.staging.manifest import Manifest, schema_to_text

    channel = BatchChannel()

    def produce() -> None:
        try:
            staging, run_id = Path(args["staging"]), args.get("run_id", "streamed")
            manifest = extract_to_staging(
                _extract_spec(), lower, staging, dag_id="bench", run_id=run_id, table="orders",
                on_schema=channel.open, on_batch=channel.put,
            )  # fmt: skip
            channel.close(manifest)
        except BaseException as error:
            channel.fail(error)

    producer = threading.Thread(target=produce)
    producer.start()
    opened = Manifest("bench", "streamed", "orders", "extract", [], 0, schema_to_text(channel.schema()))
    if args.get("mysql"):
        target = ConnectionInfo.from_uri(MYSQL_URI)
        spec = LoadSpec(target, table=MYSQL_TABLE, mode="upsert", keys=("id",))
    else:
        target = ConnectionInfo.from_uri(PG_URI)
        spec = LoadSpec(target, table="orders", schema=TARGET_SCHEMA, mode="upsert", keys=("id",))
    if getattr(lower, "partition", None) is not None:  # a partition's rows lie in its key slice
        spec = replace(spec, key_slice=lower.partition)
    try:
        load_from_staging(spec, opened, batches=iter(channel), before_commit=channel.result)
    finally:
        channel.cancel()
        producer.join()
    manifest = channel.result()
    if args.get("manifest"):
        Path(args["manifest"]).write_text(json.dumps(manifest.to_json()))
    return {"rows": manifest.rows}


def task_fused(args: dict[str, Any]) -> dict[str, Any]:
    """Extract (after the watermark of ``args["after"]``, if given) streamed into the load, in one process."""
    from airflow_provider_sync.pipeline.extract import manifest_watermark
    from airflow_provider_sync.staging.manifest import Manifest

    lower = None
    if args.get("after"):
        previous = Manifest.from_json(json.loads(Path(args["after"]).read_text()))
        lower = manifest_watermark(previous, None)
    return stream_extract_into_load(args, lower)


TASKS = {
    "raw_pg": task_raw_pg,
    "raw_mysql": task_raw_mysql,
    "extract": task_extract,
    "load": task_load,
    "fused": task_fused,
}


def _import_engine() -> None:
    import MySQLdb  # noqa: F401
    import psycopg  # noqa: F401
    import pyarrow  # noqa: F401

    import airflow_provider_sync.dialects._arrow
    import airflow_provider_sync.dialects.mysql
    import airflow_provider_sync.dialects.postgres
    import airflow_provider_sync.pipeline.extract
    import airflow_provider_sync.pipeline.load  # noqa: F401


def run_child(name: str, args: dict[str, Any]) -> None:
    """Time one task's data path; module imports are done first and reported apart, as an Airflow
    worker pays them once per task process."""
    started = time.perf_counter()
    if name in ("extract", "load", "fused"):
        _import_engine()
    imported = time.perf_counter()
    result = TASKS[name](args)
    result.update(
        seconds=time.perf_counter() - imported, import_seconds=imported - started, rss_mib=peak_rss_mib()
    )
    print(json.dumps(result))


# --------------------------------------------------------------------------- orchestration (parent)
def measure(name: str, **args: Any) -> dict[str, Any]:
    command = [sys.executable, __file__, "--task", name, "--task-args", json.dumps(args)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"task {name} failed with exit code {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _mysql_connect(mysqldb: Any) -> Any:
    from urllib.parse import urlsplit

    url = urlsplit(MYSQL_URI)
    return mysqldb.connect(
        host=url.hostname,
        port=url.port or 3306,
        user=url.username,
        password=url.password,
        database=url.path.lstrip("/"),
        local_infile=1,
        charset="utf8mb4",
    )


def prepare_postgres(rows: int) -> None:
    import psycopg

    with psycopg.connect(PG_URI, autocommit=True) as conn:
        for schema in (SOURCE_SCHEMA, TARGET_SCHEMA, DAG_SCHEMA, DAG_FUSED_SCHEMA):
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(CREATE_ORDERS)
        conn.execute(FILL_ORDERS, [rows])
        conn.execute(f"CREATE INDEX orders_updated_at_id ON {SOURCE_SCHEMA}.orders (updated_at, id)")
        conn.execute(f"VACUUM ANALYZE {SOURCE_SCHEMA}.orders")
        conn.execute(
            f"CREATE TABLE {TARGET_SCHEMA}.orders_raw "
            f"(LIKE {SOURCE_SCHEMA}.orders INCLUDING DEFAULTS INCLUDING CONSTRAINTS, PRIMARY KEY (id))"
        )


def drop_postgres_target() -> None:
    import psycopg

    with psycopg.connect(PG_URI, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TARGET_SCHEMA}.orders")


def prepare_mysql() -> None:
    import MySQLdb

    conn = _mysql_connect(MySQLdb)
    cursor = conn.cursor()
    for table in (MYSQL_TABLE, MYSQL_RAW_TABLE):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
    conn.commit()
    conn.close()


def copy_mysql_table_shape() -> None:
    """The raw baseline loads into a table shaped exactly like the one the engine created."""
    import MySQLdb

    conn = _mysql_connect(MySQLdb)
    conn.cursor().execute(f"CREATE TABLE {MYSQL_RAW_TABLE} LIKE {MYSQL_TABLE}")
    conn.close()


def change_one_percent(year: int = 2027, residue: int = 0) -> int:
    """Change 1% of the rows (those with ``id % 100 = residue``), moving them after every other row."""
    import psycopg

    with psycopg.connect(PG_URI, autocommit=True) as conn:
        changed = conn.execute(
            f"UPDATE {SOURCE_SCHEMA}.orders SET amount = amount + 1, status = 'refunded', "
            f"updated_at = timestamptz '{year}-01-01 00:00:00+00' + id * interval '1 microsecond' "
            "WHERE id %% 100 = %s",
            [residue],
        ).rowcount
        conn.execute(f"VACUUM ANALYZE {SOURCE_SCHEMA}.orders")
    return changed


def check_same_rows(target: str, schema: str = TARGET_SCHEMA) -> None:
    """The loaded table must equal the source, or the timing means nothing: compare the row count and
    the sum of a 32-bit slice of each row's md5 (order-free, and no huge aggregate string)."""
    import psycopg

    row_text = "concat_ws('|', id, email, phone, name, amount, status, {created}, {updated}, note)"
    pg_row = row_text.format(
        created="to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')",
        updated="to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')",
    )
    pg_digest = f"SELECT count(*), sum(('x' || left(md5({pg_row}), 8))::bit(32)::bigint) FROM "
    with psycopg.connect(PG_URI) as conn:
        expected = conn.execute(pg_digest + f"{SOURCE_SCHEMA}.orders").fetchone()
        if target == "postgres":
            actual = conn.execute(pg_digest + f"{schema}.orders").fetchone()
        else:
            import MySQLdb

            my_row = row_text.format(
                created="date_format(created_at, '%Y-%m-%d %H:%i:%s.%f')",
                updated="date_format(updated_at, '%Y-%m-%d %H:%i:%s.%f')",
            )
            my = _mysql_connect(MySQLdb)
            cursor = my.cursor()
            cursor.execute(f"SELECT count(*), sum(conv(left(md5({my_row}), 8), 16, 10)) FROM {MYSQL_TABLE}")
            actual = cursor.fetchone()
            my.close()
    if [int(v or 0) for v in expected or ()] != [int(v or 0) for v in actual or ()]:
        raise SystemExit(f"the {target} target differs from the source after the sync")


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = dict(runs[0])
    best["seconds"] = statistics.median(r["seconds"] for r in runs)
    best["rss_mib"] = max(r["rss_mib"] for r in runs)
    return best


def task_note(result: dict[str, Any]) -> str:
    return f"peak RSS {result['rss_mib']:.0f} MiB, +{result['import_seconds']:.1f} s imports"


def report_line(label: str, rows: int, seconds: float, baseline: float | None, rss: str) -> str:
    rate = rows / seconds if seconds else float("inf")
    ratio = f"{rate / baseline:5.2f}" if baseline else "    -"
    return f"{label:<44} {rows:>9,} rows {seconds:8.2f} s {rate:>11,.0f} rows/s  x{ratio}  {rss}"


DAG_PIPELINE = """\
version: 1
dag_id: {dag_id}
execution: {execution}
source: {{conn_id: bench_pg, table: {source}.orders}}
target: {{conn_id: bench_pg, table: {target}.orders, mode: upsert, keys: [id]}}
incremental: {{strategy: timestamp, column: updated_at, key: [id], batch_size: 50000}}
"""
#: execution -> (dag_id, target schema): one pipeline per target table, as the owners table wants.
DAG_RUNS = {"per_step": ("bench_orders_sync", DAG_SCHEMA), "fused": ("bench_orders_fused", DAG_FUSED_SCHEMA)}


def run_through_dag(work: Path, rows: int) -> list[str]:
    """Run the same sync twice through each generated DAG (per-step tasks, then one fused task) under
    ``airflow dags test`` (the full load, then after another 1% changed) and report each task's duration
    from the metadata database."""
    home, configs = work / "airflow", work / "configs"
    configs.mkdir()
    for execution, (dag_id, target) in DAG_RUNS.items():
        text = DAG_PIPELINE.format(dag_id=dag_id, execution=execution, source=SOURCE_SCHEMA, target=target)
        (configs / f"{dag_id}.yaml").write_text(text)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "SYNC_DAG_CONFIGS": str(configs),
        "SYNC_STAGING_BASE": f"file://{work / 'dag-stage'}",
        "AIRFLOW_CONN_BENCH_PG": PG_URI,
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    lines = []
    for label, changed in (("full", rows), ("incremental 1%", None)):
        if changed is None:
            changed = change_one_percent(year=2030, residue=50)
        for execution, (dag_id, target) in DAG_RUNS.items():
            lines.extend(_dag_test(airflow, env, home, dag_id, f"{label}, {execution}", changed, target))
    return lines


def _dag_test(
    airflow: str, env: dict[str, str], home: Path, dag_id: str, label: str, changed: int, target: str
) -> list[str]:
    """One ``airflow dags test`` run of ``dag_id``, checked against the source; its report lines."""
    import sqlite3

    started = time.perf_counter()
    done = subprocess.run(
        [airflow, "dags", "test", dag_id], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if os.environ.get("BENCH_DAG_LOG"):  # keep Airflow's output of each run for a closer look
        kept = Path(f"{os.environ['BENCH_DAG_LOG']}.{dag_id}.{label.split()[0]}")
        kept.write_text(done.stdout + done.stderr)
    with sqlite3.connect(home / "airflow.db") as db:
        run_id, state = db.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", [dag_id]
        ).fetchone()
        tasks = db.execute(
            "SELECT task_id, (julianday(end_date) - julianday(start_date)) * 86400 FROM task_instance "
            "WHERE dag_id = ? AND run_id = ? ORDER BY start_date",
            [dag_id, run_id],
        ).fetchall()
    if done.returncode or state != "success":
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"the DAG run ({label}) ended {state}")
    check_same_rows("postgres", target)
    running = operator_seconds(done.stdout + done.stderr)
    data_path = sum(
        running.get(task, seconds) for task, seconds in tasks if task.endswith(("extract", "load", "sync"))
    )
    note = f"`airflow dags test` wall {wall:.1f} s"
    lines = [report_line(f"DAG {label}: data tasks", changed, data_path, None, note)]
    lines.extend(
        f"    {task:<32} {running.get(task, float('nan')):6.2f} s running ({seconds:.2f} s in the DB)"
        for task, seconds in tasks
    )
    return lines


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")
_TASK_END = re.compile(r"\[DAG TEST\] end task task_id=(\S+)")


def operator_seconds(log: str) -> dict[str, float]:
    """Per task, the time from Airflow's "Task started" to the end of the task in the `dags test` log.
    The metadata DB's start_date of the first task also covers the in-process API server starting."""
    import datetime as dt

    started: dt.datetime | None = None
    seconds: dict[str, float] = {}
    for text in log.splitlines():
        stamp = _LOG_TIME.match(text)
        if not stamp:
            continue
        at = dt.datetime.fromisoformat(stamp.group(1))
        if "Task started" in text:
            started = at
        elif (end := _TASK_END.search(text)) and started is not None:
            seconds[end.group(1)] = (at - started).total_seconds()
            started = None
    return seconds


def _load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="median of this many runs per figure")
    parser.add_argument("--no-mysql", action="store_true", help="skip the PG->MariaDB part")
    parser.add_argument("--dag", action="store_true", help="also run the sync through `airflow dags test`")
    parser.add_argument("--task", choices=sorted(TASKS), help=argparse.SUPPRESS)
    parser.add_argument("--task-args", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.task:
        run_child(options.task, json.loads(options.task_args))
        return

    rows = options.rows
    print(f"load average at start: {_load_average()}")
    started = time.perf_counter()
    prepare_postgres(rows)
    print(f"generated {rows:,} rows in PostgreSQL in {time.perf_counter() - started:.1f} s")
    out: list[str] = []

    def line(label: str, count: int, seconds: float, baseline: float | None, note: str) -> None:
        out.append(report_line(label, count, seconds, baseline, note))

    with tempfile.TemporaryDirectory(prefix="sync-bench-") as folder:
        work = Path(folder)
        stage = str(work / "stage")
        raw_pg = median_of([measure("raw_pg", rows=rows) for _ in range(options.repeat)])
        base_pg = rows / raw_pg["seconds"]
        extracts, loads = [], []
        first = str(work / "full-0.json")
        for attempt in range(options.repeat):
            manifest = str(work / f"full-{attempt}.json")
            extracts.append(measure("extract", staging=stage, run_id=f"full{attempt}", manifest=manifest))
            drop_postgres_target()
            loads.append(measure("load", manifest=manifest, target="postgres"))
        extract, load = median_of(extracts), median_of(loads)
        check_same_rows("postgres")
        line("PG->PG raw binary COPY pipe", rows, raw_pg["seconds"], base_pg, task_note(raw_pg))
        line("PG->PG engine: extract to staging", rows, extract["seconds"], base_pg, task_note(extract))
        line("PG->PG engine: load (upsert, empty target)", rows, load["seconds"], base_pg, task_note(load))
        total = extract["seconds"] + load["seconds"]
        line("PG->PG engine end to end", rows, total, base_pg, "(target >= 0.80)")

        if not options.no_mysql:
            my_loads = []
            for _attempt in range(options.repeat):
                prepare_mysql()
                my_loads.append(measure("load", manifest=first, target="mysql"))
            my_load = median_of(my_loads)
            check_same_rows("mysql")
            copy_mysql_table_shape()
            raw_my = median_of([measure("raw_mysql", rows=rows) for _ in range(options.repeat)])
            base_my = rows / raw_my["seconds"]
            line(
                "PG->MariaDB raw COPY -> LOAD DATA pipe", rows, raw_my["seconds"], base_my, task_note(raw_my)
            )
            line(
                "PG->MariaDB engine: load (upsert, empty)",
                rows,
                my_load["seconds"],
                base_my,
                task_note(my_load),
            )
            total = extract["seconds"] + my_load["seconds"]
            line("PG->MariaDB engine end to end", rows, total, base_my, "(target >= 0.95)")

        changed = change_one_percent()
        inc = str(work / "inc.json")
        inc_extract = measure("extract", staging=stage, run_id="incremental", manifest=inc, after=first)
        if inc_extract["rows"] != changed:
            raise SystemExit(f"incremental extract read {inc_extract['rows']} rows, expected {changed}")
        inc_load = measure("load", manifest=inc, target="postgres")
        check_same_rows("postgres")
        line("incremental 1%: extract", changed, inc_extract["seconds"], None, task_note(inc_extract))
        line("incremental 1%: load (upsert)", changed, inc_load["seconds"], None, task_note(inc_load))
        total = inc_extract["seconds"] + inc_load["seconds"]
        line("incremental 1% data path (extract + load)", changed, total, None, "(target <= 0.60 s)")
        walls = inc_extract["seconds"] + inc_extract["import_seconds"] + inc_load["seconds"]
        walls += inc_load["import_seconds"]
        line("incremental 1%: two fresh processes, walls", changed, walls, None, "(imports included)")
        changed = change_one_percent(year=2029, residue=25)
        fused = measure("fused", staging=stage, run_id="fused", manifest=str(work / "fused.json"), after=inc)
        if fused["rows"] != changed:
            raise SystemExit(f"the fused incremental read {fused['rows']} rows, expected {changed}")
        check_same_rows("postgres")
        wall = fused["seconds"] + fused["import_seconds"]
        line("incremental 1%: fused, one process, wall", changed, wall, None, task_note(fused))

        if options.dag:
            out.extend(run_through_dag(work, rows))
    out.append(f"load average at end: {_load_average()} (ratios drift when the machine is busy)")
    print("\n".join(out))


if __name__ == "__main__":
    main()
