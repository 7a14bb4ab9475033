"""JSON Schema of pipeline files, for editors (yaml-language-server) and CI checks."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_sync.config.pipeline import pipeline_file_model

SCHEMA_ID = "https://airflow-provider-sync.readthedocs.io/schema/pipeline-v1.json"


def pipeline_json_schema() -> dict[str, Any]:
    schema = pipeline_file_model().model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def pipeline_json_schema_text() -> str:
    return json.dumps(pipeline_json_schema(), indent=2, sort_keys=True) + "\n"
