#!/usr/bin/env bash
# The demo: an incremental SQLite → SQLite sync through a real Airflow DAG.
#
# Sets up .venv, a local AIRFLOW_HOME in .demo/ with an SQLite metadata database, an SQLite "shop" with
# 1,000 orders, then runs `airflow dags test demo_orders` twice - once from scratch, once after some
# orders changed - printing what moved, the watermark and the audit rows after each run.
#
#   ./scripts/demo.sh          the demo
#   ./scripts/demo.sh --ui     the demo, then `airflow standalone` on the demo's home with the Sync page, on
#                              http://127.0.0.1:8080 (SYNC_DEMO_PORT to change it); Ctrl-C stops it
set -euo pipefail
cd "$(dirname "$0")/.."
ui=false
for arg in "$@"; do
  case "$arg" in
    --ui) ui=true ;;
    -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $arg (try --help)" >&2; exit 2 ;;
  esac
done
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
$ui || exit 0

# --ui: the same home, now served by a real Airflow (api-server, scheduler, dag-processor, triggerer).
port=${SYNC_DEMO_PORT:-8080}
url="http://127.0.0.1:$port"
export AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT="$port" AIRFLOW__API__BASE_URL="$url"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="$url/execution/"
export AIRFLOW__CORE__PARALLELISM=4 AIRFLOW__LOGGING__LOGGING_LEVEL=INFO

step "Start Airflow with the Sync page: airflow standalone on $url"
if curl -s -o /dev/null "$url/api/v2/monitor/health"; then
  echo "Port $port is already in use: stop what listens there or set SYNC_DEMO_PORT" >&2
  exit 1
fi
setsid airflow standalone >"$demo/standalone.log" 2>&1 &
airflow_pid=$!
stop_airflow() {
  trap - INT TERM EXIT
  trap "" PIPE  # a closed terminal or pipe must not stop the clean-up half-way
  echo; echo "Stopping Airflow"
  # standalone's children share its process group: ask them all, then make sure.
  kill -INT -- "-$airflow_pid" 2>/dev/null || true
  for _ in $(seq 20); do kill -0 "$airflow_pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$airflow_pid" 2>/dev/null || true
}
trap stop_airflow INT TERM EXIT
for _ in $(seq 180); do
  curl -sf "$url/api/v2/monitor/health" | grep -q '"scheduler":{"status":"healthy"' && break
  kill -0 "$airflow_pid" 2>/dev/null || { tail -40 "$demo/standalone.log"; exit 1; }
  sleep 1
done
passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
password=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' "$passwords")
cat <<EOF

  The Sync page:  $url/plugin/sync      (Airflow UI, "Sync" in the navigation)
  Sign in as:     admin / $password
  The demo DAG:   $url/dags/demo_orders

  Airflow's output: $demo/standalone.log  ·  Ctrl-C stops Airflow
EOF
wait "$airflow_pid"
