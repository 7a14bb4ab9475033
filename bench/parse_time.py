"""How long Airflow needs to parse the DAG file when dag_configs/ holds N generated pipeline files.

    .venv/bin/python bench/parse_time.py --files 200

Prints the time to import the DAG file (what the DAG processor does on every parse, after Airflow itself
is imported) and which heavy modules it pulled in beyond Airflow's own; none of pyarrow, cryptography or a
database driver should appear.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("pyarrow", "cryptography", "psycopg", "MySQLdb", "clickhouse_connect", "confluent_kafka", "oracledb")

PIPELINE = """\
version: 1
dag_id: bench_{index:04d}
schedule: "*/15 * * * *"
source: {{conn_id: src, table: public.orders_{index}}}
target: {{conn_id: dst, keys: [id]}}
incremental: {{strategy: timestamp, column: updated_at, lag: 5m}}
steps:
  - validate: {{rules: {{email: {{email: true}}, amount: {{min: 0}}}}, on_invalid: quarantine}}
tables:
  - name: orders
  - name: customers
    source: {{table: public.customers_{index}}}
"""

PROBE = textwrap.dedent("""
    import sys, time, runpy
    import airflow.sdk  # what every DAG file pays anyway; only what the DAG file adds is reported
    already = set(sys.modules)
    started = time.perf_counter()
    namespace = runpy.run_path(sys.argv[1])
    elapsed = time.perf_counter() - started
    dags = [v for v in namespace.values() if type(v).__name__ == "DAG"]
    heavy = sorted({{m.split(".")[0] for m in set(sys.modules) - already}} & {heavy!r})
    print(f"RESULT {{len(dags)}} {{elapsed:.3f}} {{','.join(heavy) or '-'}}")
""").format(heavy=set(HEAVY))


def measure(files: int) -> tuple[int, float, str]:
    with tempfile.TemporaryDirectory(prefix="sync-bench-parse-") as folder:
        for index in range(files):
            (Path(folder) / f"p{index:04d}.yaml").write_text(PIPELINE.format(index=index), encoding="utf-8")
        env = {**os.environ, "SYNC_DAG_CONFIGS": folder, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        stdout = subprocess.run(
            [sys.executable, "-c", PROBE, str(REPO / "dags" / "sync_pipelines.py")],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    result = next(line for line in stdout.splitlines() if line.startswith("RESULT "))
    _, dags, seconds, heavy = result.split()
    return int(dags), float(seconds), heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=200)
    args = parser.parse_args()
    for count in (1, args.files):
        dags, seconds, heavy = measure(count)
        print(
            f"{count:>4} pipeline files → {dags:>4} DAGs parsed in {seconds:6.2f} s "
            f"({seconds / max(dags, 1) * 1000:6.1f} ms per DAG); heavy modules imported: {heavy}"
        )


if __name__ == "__main__":
    main()
