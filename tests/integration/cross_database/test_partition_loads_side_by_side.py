"""On PostgreSQL the partitions of one read load into their target side by side (the target's lock taken in
shared mode), while the owner rule still holds: another pipeline's partition is refused, a load that is not
a partition waits for the partitions' loads to end, pipelines sharing a target still take turns, and the
bookkeeping tables a load creates (the append ledger, the quarantine) are never created by two at once."""

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


def _partitions(db: Any, tmp_path: Path, table: str = "events", first_id: int = 1) -> list[Any]:
    db.create(table, [("id", "int"), ("note", "text")], ["id"])
    db.insert(table, ["id", "note"], [(i, f"n{i}") for i in range(first_id, first_id + 200)])
    spec = _full_read(db, table)
    return [
        extract_to_staging(spec, r, tmp_path / f"{table}{i}", dag_id="d", run_id="r", table=table)
        for i, r in enumerate(plan_partitions(spec, "id", 2))
    ]


def _full_read(db: Any, table: str) -> ExtractSpec:
    return ExtractSpec(db.info, table=db.name(table), schema=db.schema, strategy="full", key_columns=("id",))


def _target(db: Any, manifest: Any, pipeline: str = "d.events", **more: Any) -> LoadSpec:
    spec = LoadSpec(db.info, table=db.name("copy"), schema=db.schema, mode="upsert", keys=("id",))
    key_slice = ExtractRange.from_json(manifest.range).partition
    return replace(spec, pipeline=pipeline, key_slice=key_slice, **more)


class _Load(threading.Thread):
    """A load on a thread of its own, keeping its error."""

    def __init__(self, spec: LoadSpec, manifest: Any, **options: Any) -> None:
        super().__init__(daemon=True)
        self.spec, self.manifest, self.options = spec, manifest, options
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            load_from_staging(self.spec, self.manifest, **self.options)
        except BaseException as error:
            self.error = error


class _HeldOpen(_Load):
    """A load whose transaction stays open (before its commit) until ``release`` is set."""

    def __init__(self, spec: LoadSpec, manifest: Any, **options: Any) -> None:
        super().__init__(spec, manifest, before_commit=self.hold, **options)
        self.waiting, self.release = threading.Event(), threading.Event()

    def hold(self) -> None:
        self.waiting.set()
        assert self.release.wait(WAIT), "the held load was never released"


def _overlaps(held: _HeldOpen, other: _Load) -> bool:
    """Run ``other`` while ``held`` keeps its transaction open; True when ``other`` finished meanwhile."""
    held.start()
    assert held.waiting.wait(WAIT), "the held load did not get to its commit"
    other.start()
    other.join(3)
    went_ahead = not other.is_alive()
    held.release.set()
    held.join(WAIT)
    other.join(WAIT)
    assert held.error is None and other.error is None, (held.error, other.error)
    return went_ahead


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


def test_append_partitions_create_the_ledger_once_and_load_side_by_side(make_db: Any, tmp_path: Path) -> None:
    db = make_db("postgres")
    first, second = _partitions(db, tmp_path)
    held = _HeldOpen(_target(db, first, mode="append"), first)
    assert _overlaps(held, _Load(_target(db, second, mode="append"), second))
    assert _rows(db) == 200
    again = load_from_staging(_target(db, second, mode="append"), second)
    assert again.ledger_skipped, "each partition's ledger row skips its range on a rerun"


def test_quarantining_partitions_take_turns_and_create_the_quarantine_once(
    make_db: Any, tmp_path: Path
) -> None:
    db = make_db("postgres")
    first, second = _partitions(db, tmp_path)
    held = _HeldOpen(_target(db, first), first, on_load_error="quarantine")
    assert not _overlaps(held, _Load(_target(db, second), second, on_load_error="quarantine"))
    assert _rows(db) == 200


def test_pipelines_sharing_a_target_still_take_turns(make_db: Any, tmp_path: Path) -> None:
    db = make_db("postgres")
    ours = _partitions(db, tmp_path, "a")
    theirs = _partitions(db, tmp_path, "b", first_id=1001)
    load_from_staging(_target(db, ours[0], "d.a", target_shared=True), ours[0])
    load_from_staging(_target(db, theirs[1], "d.b", target_shared=True), theirs[1])
    held = _HeldOpen(_target(db, ours[1], "d.a", target_shared=True), ours[1])
    assert not _overlaps(held, _Load(_target(db, theirs[0], "d.b", target_shared=True), theirs[0]))
    assert _rows(db) == 400


def test_a_slice_of_a_column_that_is_not_the_key_takes_turns(make_db: Any, tmp_path: Path) -> None:
    """Partitioned by a column that is not the key, a row that moved between slices while the partitions
    were read is in both: the partitions take turns, so the second merges it instead of copying it again."""
    db = make_db("postgres")
    db.create("events", [("id", "int"), ("grp", "int"), ("note", "text")], ["id"])
    db.insert("events", ["id", "grp", "note"], [(i, i, f"n{i}") for i in range(1, 201)])
    spec = ExtractSpec(
        db.info, table=db.name("events"), schema=db.schema, strategy="full", key_columns=("id",)
    )
    ranges = plan_partitions(spec, "grp", 2)
    first = extract_to_staging(spec, ranges[0], tmp_path / "p0", dag_id="d", run_id="r", table="events")
    db.run(f"UPDATE {db.qualified('events')} SET grp = 199 WHERE id = 5")  # now in the second slice too
    second = extract_to_staging(spec, ranges[1], tmp_path / "p1", dag_id="d", run_id="r", table="events")
    assert not _overlaps(_HeldOpen(_target(db, first), first), _Load(_target(db, second), second))
    assert _rows(db) == 200
