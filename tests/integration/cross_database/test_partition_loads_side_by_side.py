"""On PostgreSQL the partitions of one read load into their target side by side (the target's lock taken in
shared mode), while the owner rule still holds: another pipeline's partition is refused, and a load that is
not a partition waits for the partitions' loads to end."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.core.watermark import ExtractRange
from airflow_provider_sync.pipeline.extract import extract_to_staging
from airflow_provider_sync.pipeline.load import load_from_staging
from airflow_provider_sync.pipeline.ownership import TargetOwnedError
from airflow_provider_sync.pipeline.partitions import plan_partitions
from airflow_provider_sync.pipeline.specs import ExtractSpec, LoadSpec
from tests.integration.namespaces import make_db

__all__ = ["make_db"]

pytestmark = pytest.mark.integration
WAIT = 20  # seconds a load may take here before the test calls it stuck


def _partitions(db: Any, tmp_path: Path) -> list[Any]:
    db.create("events", [("id", "int"), ("note", "text")], ["id"])
    db.insert("events", ["id", "note"], [(i, f"n{i}") for i in range(1, 201)])
    spec = ExtractSpec(
        db.info, table=db.name("events"), schema=db.schema, strategy="full", key_columns=("id",)
    )
    return [
        extract_to_staging(spec, r, tmp_path / f"p{i}", dag_id="d", run_id="r", table="events")
        for i, r in enumerate(plan_partitions(spec, "id", 2))
    ]


def _target(db: Any, manifest: Any, pipeline: str = "d.events") -> LoadSpec:
    spec = LoadSpec(db.info, table=db.name("copy"), schema=db.schema, mode="upsert", keys=("id",))
    return replace(spec, pipeline=pipeline, key_slice=ExtractRange.from_json(manifest.range).partition)


class _HeldOpen(threading.Thread):
    """A load whose transaction stays open (before its commit) until ``release`` is set."""

    def __init__(self, spec: LoadSpec, manifest: Any) -> None:
        super().__init__(daemon=True)
        self.spec, self.manifest = spec, manifest
        self.waiting, self.release = threading.Event(), threading.Event()
        self.error: BaseException | None = None

    def hold(self) -> None:
        self.waiting.set()
        assert self.release.wait(WAIT), "the held load was never released"

    def run(self) -> None:
        try:
            load_from_staging(self.spec, self.manifest, before_commit=self.hold)
        except BaseException as error:
            self.error = error


def _rows(db: Any) -> int:
    return int(db.run(f"SELECT COUNT(*) FROM {db.qualified('copy')}")[0][0])


def test_partitions_of_one_read_load_side_by_side(make_db: Any, tmp_path: Path) -> None:
    db = make_db("postgres")
    first, second = _partitions(db, tmp_path)
    held = _HeldOpen(_target(db, first), first)
    held.start()
    assert held.waiting.wait(WAIT), "the first partition's load did not get to its commit"
    # The first partition created the table and committed its claim before loading: the second loads
    # now, while the first one's transaction is still open.
    done = load_from_staging(_target(db, second), second)
    assert done.inserted == second.rows
    held.release.set()
    held.join(WAIT)
    assert held.error is None
    assert _rows(db) == first.rows + second.rows == 200


def test_another_pipelines_partition_is_refused(make_db: Any, tmp_path: Path) -> None:
    db = make_db("postgres")
    first, second = _partitions(db, tmp_path)
    load_from_staging(_target(db, first), first)
    with pytest.raises(TargetOwnedError, match=r"is loaded by pipeline d\.events"):
        load_from_staging(_target(db, second, pipeline="other.events"), second)
    assert _rows(db) == first.rows


def test_a_load_that_is_not_a_partition_waits_for_the_partitions(make_db: Any, tmp_path: Path) -> None:
    db = make_db("postgres")
    first, second = _partitions(db, tmp_path)
    held = _HeldOpen(_target(db, first), first)
    held.start()
    assert held.waiting.wait(WAIT)
    whole = replace(_target(db, second), key_slice=None)
    waiting = threading.Thread(target=load_from_staging, args=(whole, second), daemon=True)
    waiting.start()
    waiting.join(1.5)
    assert waiting.is_alive(), "the exclusive load went ahead while a partition's load was open"
    held.release.set()
    held.join(WAIT)
    waiting.join(WAIT)
    assert not waiting.is_alive() and held.error is None
    assert _rows(db) == 200
