#!/usr/bin/env bash
# Run the whole test suite: set up .venv, make sure the local PostgreSQL and MariaDB are up, then lint,
# type-check, check the import layers and run pytest. Extra arguments go to pytest (e.g. scripts/test.sh -k watermark).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
./scripts/test-servers.sh
echo "== ruff"
.venv/bin/ruff check airflow_provider_sync tests bench dags
echo "== mypy (strict)"
.venv/bin/mypy airflow_provider_sync
echo "== import layers (import-linter)"
.venv/bin/lint-imports --no-cache
echo "== pytest"
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
