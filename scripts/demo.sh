#!/usr/bin/env bash
# The demo: an incremental SQLite → SQLite sync through a real Airflow DAG.
#
# Sets up .venv, a local AIRFLOW_HOME in .demo/ with an SQLite metadata database, an SQLite "shop" with
# 1,000 orders, then runs `airflow dags test demo_orders` twice - once from scratch, once after some
# orders changed - printing what moved, the watermark and the audit rows after each run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh

root=$(pwd)
demo="$root/.demo"
rm -rf "$demo" && mkdir -p "$demo"
export AIRFLOW_HOME="$demo/airflow"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER="$root/dags"
export AIRFLOW__LOGGING__LOGGING_LEVEL=WARNING
export SYNC_DAG_CONFIGS="$root/dag_configs/demo_orders.yaml"
export SYNC_STAGING_BASE="file://$demo/staging"
export AIRFLOW_CONN_DEMO_SHOP="sqlite:///$demo/shop.db"
export AIRFLOW_CONN_DEMO_WAREHOUSE="sqlite:///$demo/warehouse.db"
PATH="$root/.venv/bin:$PATH"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Validate and render the pipeline"
airflow-sync validate dag_configs/
airflow-sync render dag_configs/demo_orders.yaml

step "Prepare Airflow (SQLite metadata database in $AIRFLOW_HOME)"
airflow db migrate >/dev/null 2>&1
python scripts/demo_data.py seed "$demo/shop.db"

run_sync() {
  step "Run $1: airflow dags test demo_orders"
  airflow dags test demo_orders >"$demo/run-$1.log" 2>&1 || { tail -50 "$demo/run-$1.log"; exit 1; }
  python scripts/demo_report.py "$demo" "$1"
}

run_sync 1
step "Change the shop: update 25 orders and add 10"
python scripts/demo_data.py change "$demo/shop.db"
run_sync 2

step "Source and target compared"
python scripts/demo_data.py compare "$demo/shop.db" "$demo/warehouse.db"
echo
echo "Logs: $demo/run-*.log  ·  Airflow home: $AIRFLOW_HOME"
