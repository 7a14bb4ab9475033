"""A partitioned initial load PG->PG against one raw binary COPY stream, measured in the same run.

    .venv/bin/python bench/sync_partitioned.py --rows 5000000 --partitions 4

Builds the same ``bench_src.orders`` table as ``sync_throughput.py`` (same servers, ``BENCH_PG_URI``),
then times, each from a fresh process:

1. the raw baseline: ``COPY orders TO STDOUT (FORMAT binary) | COPY orders_raw FROM STDIN``, one stream;
2. the engine in one stream: extract, then load (upsert into an empty target), one after the other;
3. the engine fused: the extract on a thread streaming each batch into the load (one process), as a
   fused table without steps runs;
4. the engine partitioned: ``plan_partitions`` (one high-water mark, the key slices), then one process per
   partition running extract -> load of its slice, all started together, as the mapped ``sync`` tasks of a
   partitioned table run on a worker with that many slots. Its time runs from the plan to the last load.

The target is compared with the source after each engine run. Ratios divide rows/s by the raw stream's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sync_throughput as base


def task_partition(args: dict[str, Any]) -> dict[str, Any]:
    """Extract one partition's range streamed into its load, as one mapped ``sync`` task does."""
    from airflow_provider_sync.core.watermark import ExtractRange

    range_ = ExtractRange.from_json(args["range"])
    return base.stream_extract_into_load(args, range_)


def task_streamed(args: dict[str, Any]) -> dict[str, Any]:
    """Extract on a thread streaming into the load, as a fused table without steps runs."""
    return base.stream_extract_into_load(args, None)


def run_partitions(count: int, work: Path) -> tuple[float, int, list[dict[str, Any]]]:
    from airflow_provider_sync.pipeline.partitions import plan_partitions

    started = time.perf_counter()
    ranges = plan_partitions(base._extract_spec(), "id", count)
    children = []
    for index, range_ in enumerate(ranges):
        args = {"range": range_.to_json(), "staging": str(work / f"p{index}")}
        command = [sys.executable, __file__, "--task", "partition", "--task-args", json.dumps(args)]
        children.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=base.REPO))
    results = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode:
            raise SystemExit(f"a partition failed with exit code {child.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return time.perf_counter() - started, len(ranges), results


def _measure_streamed(work: Path, mysql: bool = False) -> dict[str, Any]:
    args = json.dumps({"staging": str(work / ("streamed-mysql" if mysql else "streamed")), "mysql": mysql})
    command = [sys.executable, __file__, "--task", "streamed", "--task-args", args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=base.REPO, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _pg_to_mariadb(work: Path, rows: int) -> None:
    """PG->MariaDB fused (the extract streamed into ``LOAD DATA``) against ``LOAD DATA`` fed by ``COPY``."""
    base.prepare_mysql()
    streamed = _measure_streamed(work, mysql=True)
    base.check_same_rows("mysql")
    base.copy_mysql_table_shape()
    raw = base.measure("raw_mysql", rows=rows)["seconds"]
    print(f"raw LOAD DATA fed from COPY        {raw:7.2f} s  {rows / raw:>10,.0f} rows/s  1.00x")
    print(
        f"engine, fused PG->MariaDB          {streamed['seconds']:7.2f} s  "
        f"{rows / streamed['seconds']:>10,.0f} rows/s  {raw / streamed['seconds']:.2f}x  "
        f"(peak RSS {streamed['rss_mib']:.0f} MiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--mysql", action="store_true", help="also PG->MariaDB fused, against LOAD DATA")
    parser.add_argument("--task")
    parser.add_argument("--task-args")
    options = parser.parse_args()
    if options.task in ("partition", "streamed"):
        base._import_engine()
        started = time.perf_counter()
        task = task_partition if options.task == "partition" else task_streamed
        result = task(json.loads(options.task_args))
        result.update(seconds=time.perf_counter() - started, rss_mib=base.peak_rss_mib())
        print(json.dumps(result, default=str))
        return
    if options.task:
        base.run_child(options.task, json.loads(options.task_args))
        return

    rows = options.rows
    print(f"load average {base._load_average()}; building {rows:,} rows", flush=True)
    base.prepare_postgres(rows)
    raw = base.measure("raw_pg", rows=rows)
    speed = rows / raw["seconds"]
    print(f"raw binary COPY pipe PG->PG      {raw['seconds']:7.2f} s  {speed:>10,.0f} rows/s  1.00x")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        manifest = work / "manifest.json"
        extract = base.measure("extract", staging=str(work / "one"), manifest=str(manifest), run_id="one")
        load = base.measure("load", manifest=str(manifest), target="postgres")
        base.check_same_rows("postgres")
        one = extract["seconds"] + load["seconds"]
        print(
            f"engine, one stream (extract+load) {one:7.2f} s  {rows / one:>10,.0f} rows/s  "
            f"{raw['seconds'] / one:.2f}x  (extract {extract['seconds']:.2f} s, "
            f"load {load['seconds']:.2f} s, "
            f"peak RSS {max(extract['rss_mib'], load['rss_mib']):.0f} MiB)"
        )
        base.drop_postgres_target()
        streamed = _measure_streamed(work)
        base.check_same_rows("postgres")
        print(
            f"engine, fused (extract streamed into load) {streamed['seconds']:7.2f} s  "
            f"{rows / streamed['seconds']:>10,.0f} rows/s  {raw['seconds'] / streamed['seconds']:.2f}x  "
            f"(peak RSS {streamed['rss_mib']:.0f} MiB)"
        )
        if options.mysql:
            _pg_to_mariadb(work, rows)
        base.drop_postgres_target()
        wall, count, results = run_partitions(options.partitions, work)
        base.check_same_rows("postgres")
        print(
            f"engine, {count} partitions          {wall:7.2f} s  {rows / wall:>10,.0f} rows/s  "
            f"{raw['seconds'] / wall:.2f}x  (slowest partition {max(r['seconds'] for r in results):.2f} s, "
            f"peak RSS per partition {max(r['rss_mib'] for r in results):.0f} MiB)"
        )
    print(f"load average {base._load_average()}")


if __name__ == "__main__":
    main()
