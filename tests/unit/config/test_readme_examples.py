"""The pipeline shown in the README is a valid pipeline."""

from __future__ import annotations

import re
from pathlib import Path

from airflow_provider_sync.config.resolve import load_pipeline

REPO = Path(__file__).resolve().parents[3]


def test_readme_pipeline_examples_validate(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.DOTALL) if "dag_id:" in b]
    assert blocks
    for index, block in enumerate(blocks):
        path = tmp_path / f"example{index}.yaml"
        path.write_text(block, encoding="utf-8")
        pipeline = load_pipeline(path)
        assert pipeline.tables
