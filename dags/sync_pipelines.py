"""Turns every pipeline file in dag_configs/ (or $SYNC_DAG_CONFIGS) into an Airflow DAG."""

from pathlib import Path

from airflow_provider_sync.factory.loader import configs_folder, load_dags_into

load_dags_into(globals(), configs_folder(Path(__file__).resolve().parent.parent / "dag_configs"))
