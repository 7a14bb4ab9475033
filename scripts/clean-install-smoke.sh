#!/usr/bin/env bash
# Clean-install smoke test: build the wheel, install it into a fresh virtualenv with only the declared
# extras ([postgres,mysql], pinned by constraints.txt, no test tools), then run the demo pipeline
# (dag_configs/demo_orders.yaml, pointed at the servers) through a real `airflow dags test` against
# PostgreSQL and against MariaDB: a first sync, then a second one after 25 updates and 10 inserts. The
# target must hold exactly the source's rows each time. A runtime dependency the package uses but does
# not declare - hidden in the development venv by the test tools - fails here.
#
# Servers: SYNC_TEST_PG_URI / SYNC_TEST_MYSQL_URI, or the local ones scripts/test-servers.sh prepares.
# It uses its own schema (PostgreSQL) and table names (MariaDB), so it never touches the tests' tables.
# Set KEEP_SMOKE=1 to keep the scratch directory (wheel, venv, Airflow home, logs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export PATH="$HOME/.local/bin:$PATH"
command -v uv >/dev/null || { echo "clean-install smoke needs uv: run scripts/bootstrap.sh" >&2; exit 1; }
PYTHON=${PYTHON:-python3}
pg_uri=${SYNC_TEST_PG_URI:-postgresql://postgres:postgres@127.0.0.1:5432/sync_test}
mysql_uri=${SYNC_TEST_MYSQL_URI:-mysql://sync:sync@127.0.0.1:3306/sync_test}

work=$(mktemp -d "${TMPDIR:-/tmp}/sync-clean-install.XXXXXX")
finish() {
  status=$?
  if [ "$status" -ne 0 ]; then
    # The step that failed wrote the newest log. Its tables stay for a look; the next run drops them.
    log=$(ls -t "$work"/*.log 2>/dev/null | head -1 || true)
    [ -n "$log" ] && { echo "---- tail of $log"; tail -40 "$log"; }
    echo "clean-install smoke FAILED (exit $status); run with KEEP_SMOKE=1 to keep $work" >&2
  fi
  if [ -n "${KEEP_SMOKE:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap finish EXIT
started=$SECONDS
step() { printf '== clean-install: %s (%ss)\n' "$*" "$((SECONDS - started))"; }

step "build the sdist, and the wheel from it"
# From the sdist, so nothing is built inside the checkout (a stale build/ could leak into the wheel) and a
# file missing from the sdist shows too.
uv build --quiet --out-dir "$work/dist" >"$work/build.log" 2>&1
wheel=$(ls "$work"/dist/*.whl)

step "install $(basename "$wheel")[postgres,mysql] into a fresh venv"
uv venv --quiet --python "$("$PYTHON" -c 'import sys; print(sys.executable)')" "$work/venv"
uv pip install --quiet --python "$work/venv/bin/python" -c constraints.txt "$wheel[postgres,mysql]" \
  >"$work/install.log" 2>&1
venv_python="$work/venv/bin/python"
# The installed package, not the checkout, must be the one imported.
(cd "$work" && "$venv_python" -c 'import airflow_provider_sync as p, sys; sys.exit("/site-packages/" not in p.__file__)')

export AIRFLOW_HOME="$work/airflow"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER="$work/dags"
export AIRFLOW__LOGGING__LOGGING_LEVEL=WARNING
export SYNC_DAG_CONFIGS="$work/dag_configs"
export SYNC_STAGING_BASE="file://$work/staging"
export AIRFLOW_CONN_SMOKE_PG="$pg_uri"
export AIRFLOW_CONN_SMOKE_MYSQL="$mysql_uri"
mkdir -p "$work/dags" "$work/dag_configs"
cp dags/sync_pipelines.py "$work/dags/"
cp "$root/scripts/clean_install_data.py" "$work/data.py"

step "write the pipelines and seed the sources"
cleanup() {
  (cd "$work" && "$venv_python" data.py drop "$pg_uri" 'clean_install_smoke.*')
  (cd "$work" && "$venv_python" data.py drop "$mysql_uri" clean_install_orders clean_install_orders_copy \
    clean_install_audit)
}
cleanup  # leftovers of an interrupted earlier run, audit rows included
# PostgreSQL: schema clean_install_smoke; MariaDB: tables clean_install_* in the test database.
(cd "$work" && "$venv_python" data.py pipeline "$root/dag_configs/demo_orders.yaml" dag_configs \
  clean_install_pg smoke_pg clean_install_smoke.orders clean_install_smoke.orders_copy)
(cd "$work" && "$venv_python" data.py pipeline "$root/dag_configs/demo_orders.yaml" dag_configs \
  clean_install_mariadb smoke_mysql clean_install_orders clean_install_orders_copy)
(cd "$work" && "$venv_python" data.py seed "$pg_uri" clean_install_smoke.orders clean_install_smoke.orders_copy)
(cd "$work" && "$venv_python" data.py seed "$mysql_uri" clean_install_orders clean_install_orders_copy)

step "prepare Airflow (SQLite metadata database)"
PATH="$work/venv/bin:$PATH" airflow db migrate >"$work/migrate.log" 2>&1

run_and_compare() {  # dag_id uri source target run
  step "airflow dags test $1 (run $5)"
  # `airflow dags test` exits non-zero when the run failed.
  (cd "$work" && PATH="$work/venv/bin:$PATH" airflow dags test "$1" >"$work/$1-run$5.log" 2>&1)
  (cd "$work" && "$venv_python" data.py compare "$2" "$3" "$4")
}

for run in 1 2; do
  run_and_compare clean_install_pg "$pg_uri" clean_install_smoke.orders clean_install_smoke.orders_copy "$run"
  run_and_compare clean_install_mariadb "$mysql_uri" clean_install_orders clean_install_orders_copy "$run"
  if [ "$run" = 1 ]; then
    (cd "$work" && "$venv_python" data.py change "$pg_uri" clean_install_smoke.orders)
    (cd "$work" && "$venv_python" data.py change "$mysql_uri" clean_install_orders)
  fi
done

cleanup
step "passed: the clean install synced PostgreSQL and MariaDB"
