"""Staged Arrow data on object storage, and the manifest that describes it."""

from .files import StageWriter, cleanup_run, read_staged, run_dir, staging_root, step_dir
from .manifest import MANIFEST_VERSION, Manifest, StepRecord, schema_from_text, schema_to_text

__all__ = [
    "MANIFEST_VERSION",
    "Manifest",
    "StageWriter",
    "StepRecord",
    "cleanup_run",
    "read_staged",
    "run_dir",
    "schema_from_text",
    "schema_to_text",
    "staging_root",
    "step_dir",
]
