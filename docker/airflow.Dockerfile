# Airflow 3.3 with airflow-provider-sync (and every optional database driver) installed from this repository.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root pyproject.toml README.md* /opt/airflow-provider-sync/
COPY --chown=airflow:root airflow_provider_sync /opt/airflow-provider-sync/airflow_provider_sync
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/airflow-provider-sync[all]"

# Owned by the airflow user so the named volume mounted here is writable by tasks.
RUN mkdir -p /opt/airflow/staging
