"""TPC-H ``lineitem`` PG->PG: the engine against a raw binary COPY pipe, measured in the same run.

    uv pip install --python .venv duckdb duckdb-extension-tpch     # once; not a test dependency
    .venv/bin/python bench/tpch_lineitem.py --scale 1               # 6,001,215 rows

DuckDB's ``tpch`` extension (from PyPI, nothing downloaded at run time) generates ``lineitem`` at the scale
factor asked for; it is copied into ``bench_tpch.lineitem`` (primary key ``l_orderkey, l_linenumber``) on
the benchmark PostgreSQL (``BENCH_PG_URI``). Then, each from a fresh process: the raw binary
``COPY | COPY`` pipe; the engine's extract then load (strategy ``full``, upsert into an empty target) as
two per-step tasks run; and the engine fused (the extract streaming into the load in one process). The
target is compared with the source (row count and a hash of every row) after each engine run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sync_throughput as base

SCHEMA = "bench_tpch"
KEYS = ("l_orderkey", "l_linenumber")
COLUMNS = (
    "l_orderkey bigint, l_partkey bigint, l_suppkey bigint, l_linenumber bigint, l_quantity numeric(15,2), "
    "l_extendedprice numeric(15,2), l_discount numeric(15,2), l_tax numeric(15,2), l_returnflag text, "
    "l_linestatus text, l_shipdate date, l_commitdate date, l_receiptdate date, l_shipinstruct text, "
    "l_shipmode text, l_comment text"
)


def generate(scale: float, path: Path) -> None:
    import duckdb
    import duckdb_extension_tpch

    version = duckdb.__version__
    extension = (
        Path(duckdb_extension_tpch.__file__).parent / "extensions" / f"v{version}" / "tpch.duckdb_extension"
    )
    conn = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    conn.execute(f"LOAD '{extension}'")
    conn.execute(f"CALL dbgen(sf={scale})")
    conn.execute(f"COPY lineitem TO '{path}' (FORMAT csv, HEADER false)")


def prepare(csv: Path) -> int:
    import psycopg

    with psycopg.connect(base.PG_URI, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        for table in ("lineitem", "lineitem_raw"):
            conn.execute(f"CREATE TABLE {SCHEMA}.{table} ({COLUMNS}, PRIMARY KEY ({', '.join(KEYS)}))")
        with (
            conn.cursor().copy(f"COPY {SCHEMA}.lineitem FROM STDIN (FORMAT csv)") as into,
            csv.open("rb") as rows,
        ):
            while chunk := rows.read(1 << 20):
                into.write(chunk)
        conn.execute(f"VACUUM ANALYZE {SCHEMA}.lineitem")
        return int(conn.execute(f"SELECT count(*) FROM {SCHEMA}.lineitem").fetchone()[0])


def _spec() -> Any:
    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.pipeline.specs import ExtractSpec

    return ExtractSpec(
        ConnectionInfo.from_uri(base.PG_URI),
        table="lineitem",
        schema=SCHEMA,
        strategy="full",
        key_columns=KEYS,
    )


def _target() -> Any:
    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.pipeline.specs import LoadSpec

    info = ConnectionInfo.from_uri(base.PG_URI)
    return LoadSpec(info, table="lineitem_copy", schema=SCHEMA, mode="upsert", keys=KEYS)


def task(name: str, args: dict[str, Any]) -> dict[str, Any]:
    from airflow_provider_sync.pipeline.extract import extract_to_staging
    from airflow_provider_sync.pipeline.load import load_from_staging
    from airflow_provider_sync.pipeline.stream import BatchChannel
    from airflow_provider_sync.staging.manifest import Manifest, schema_to_text

    staging = Path(args["staging"])
    if name == "raw":
        import psycopg

        with psycopg.connect(base.PG_URI) as source, psycopg.connect(base.PG_URI) as target:
            reading = source.cursor().copy(f"COPY {SCHEMA}.lineitem TO STDOUT (FORMAT binary)")
            writing = target.cursor().copy(f"COPY {SCHEMA}.lineitem_raw FROM STDIN (FORMAT binary)")
            with reading as out, writing as into:
                for chunk in out:
                    into.write(chunk)
        return {}
    if name == "extract":
        manifest = extract_to_staging(_spec(), None, staging, dag_id="bench", run_id="t", table="lineitem")
        Path(args["manifest"]).write_text(json.dumps(manifest.to_json()))
        return {"rows": manifest.rows}
    if name == "load":
        manifest = Manifest.from_json(json.loads(Path(args["manifest"]).read_text()))
        return {"rows": load_from_staging(_target(), manifest).rows_staged}
    channel = BatchChannel()

    def produce() -> None:
        try:
            channel.close(
                extract_to_staging(
                    _spec(), None, staging, dag_id="bench", run_id="t", table="lineitem",
                    on_schema=channel.open, on_batch=channel.put,
                )
            )  # fmt: skip
        except BaseException as error:
            channel.fail(error)

    producer = threading.Thread(target=produce)
    producer.start()
    opened = Manifest("bench", "t", "lineitem", "extract", [], 0, schema_to_text(channel.schema()))
    try:
        load_from_staging(_target(), opened, batches=iter(channel), before_commit=channel.result)
    finally:
        channel.cancel()
        producer.join()
    return {"rows": channel.result().rows}


def measure(name: str, **args: Any) -> dict[str, Any]:
    command = [sys.executable, __file__, "--task", name, "--task-args", json.dumps(args)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=base.REPO, check=False)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"task {name} failed with exit code {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def check_copy(rows: int) -> None:
    import psycopg

    digest = "SELECT count(*), sum(hashtext(t::text)) FROM {} t"
    with psycopg.connect(base.PG_URI) as conn:
        expected = conn.execute(digest.format(f"{SCHEMA}.lineitem")).fetchone()
        actual = conn.execute(digest.format(f"{SCHEMA}.lineitem_copy")).fetchone()
        conn.execute(f"DROP TABLE {SCHEMA}.lineitem_copy")
        conn.commit()
    if expected != actual or expected[0] != rows:
        raise SystemExit(f"the copy differs from the source: {actual} != {expected}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--task")
    parser.add_argument("--task-args")
    options = parser.parse_args()
    if options.task:
        if options.task != "raw":
            base._import_engine()
        started = time.perf_counter()
        result = task(options.task, json.loads(options.task_args))
        result.update(seconds=time.perf_counter() - started, rss_mib=base.peak_rss_mib())
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        print(
            f"load average {base._load_average()}; generating lineitem at scale {options.scale}", flush=True
        )
        generate(options.scale, work / "lineitem.csv")
        rows = prepare(work / "lineitem.csv")
        raw = measure("raw", staging=str(work))["seconds"]

        def line(label: str, seconds: float, rss: float | None) -> None:
            memory = f"  peak RSS {rss:.0f} MiB" if rss else ""
            print(
                f"{label:<36} {seconds:7.2f} s {rows / seconds:>10,.0f} rows/s  {raw / seconds:.2f}x{memory}"
            )

        line("raw binary COPY pipe PG->PG", raw, None)
        manifest = str(work / "manifest.json")
        extract = measure("extract", staging=str(work / "extract"), manifest=manifest)
        load = measure("load", staging=str(work), manifest=manifest)
        check_copy(rows)
        line(
            "engine, extract + load (per-step)",
            extract["seconds"] + load["seconds"],
            max(extract["rss_mib"], load["rss_mib"]),
        )
        fused = measure("fused", staging=str(work / "fused"))
        check_copy(rows)
        line("engine, fused (extract streamed)", fused["seconds"], fused["rss_mib"])
    print(f"{rows:,} rows; load average {base._load_average()}")


if __name__ == "__main__":
    main()
