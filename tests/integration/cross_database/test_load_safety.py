"""Load safety on real targets: staged files are checked against their manifest, loads into one target
table take turns on the target's lock, a second pipeline is refused unless the target is declared shared,
and a row holding a NUL character still reaches the quarantine table."""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.pipeline.load import load_from_staging
from airflow_provider_sync.pipeline.ownership import TargetOwnedError
from airflow_provider_sync.pipeline.quarantine import NUL_MARKER, QuarantineWriter
from airflow_provider_sync.pipeline.specs import LoadSpec
from airflow_provider_sync.staging.files import StageWriter
from airflow_provider_sync.staging.manifest import Manifest, schema_to_text
from airflow_provider_sync.staging.verify import StagedFileError

pytestmark = pytest.mark.integration

KINDS = ["postgres", "mysql", "sqlite"]
SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string())])


def stage(directory: Path, rows: int, run_id: str = "run1", first: int = 1) -> Manifest:
    with StageWriter(directory, SCHEMA) as writer:
        for start in range(first, first + rows, 100_000):
            ids = pa.array(range(start, min(start + 100_000, first + rows)), pa.int64())
            names = pa.array([f"n{i % 1000}" for i in range(len(ids))], pa.string())
            writer.write(pa.RecordBatch.from_arrays([ids, names], schema=SCHEMA))
    return manifest_of(writer, run_id)


def manifest_of(writer: StageWriter, run_id: str = "run1") -> Manifest:
    """The extract manifest of the files ``writer`` staged."""
    return Manifest(
        "shop_sync",
        run_id,
        "orders",
        "extract",
        writer.files,
        writer.rows,
        schema_to_text(SCHEMA),
        parts=writer.parts,
    )


def spec(target: Any, pipeline: str = "shop_sync.orders", *, shared: bool = False) -> LoadSpec:
    return LoadSpec(
        target.info,
        table=target.table("orders").name,
        schema=target.schema,
        mode="append",
        pipeline=pipeline,
        ledger_table=target.table("sync_ledger").name,
        target_shared=shared,
    )


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_a_10k_row_file_under_a_1m_row_manifest_fails_the_load(
    make_db: Any, tmp_path: Path, kind: str
) -> None:
    target = make_db(kind)
    manifest = stage(tmp_path / "big", 1_000_000)
    small = stage(tmp_path / "small", 10_000)
    shutil.copyfile(small.files[0], manifest.files[0])
    with pytest.raises(StagedFileError) as caught:
        load_from_staging(spec(target), manifest)
    message = str(caught.value)
    assert manifest.files[0] in message and "expected 1,000,000 rows" in message
    assert "found 10,000 rows" in message
    # Rolled back: no row and no ledger entry of the damaged load stayed.
    assert not target.dialect.table_exists(target.conn, target.table("orders"))
    target.conn.rollback()


def test_a_missing_or_truncated_staged_file_fails_the_load(make_db: Any, tmp_path: Path) -> None:
    target = make_db("postgres")
    manifest = stage(tmp_path / "a", 50_000)
    Path(manifest.files[0]).unlink()
    with pytest.raises(StagedFileError, match="is missing"):
        load_from_staging(spec(target), manifest)
    manifest = stage(tmp_path / "b", 50_000)
    path = Path(manifest.files[0])
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(StagedFileError, match=str(path)):
        load_from_staging(spec(target), manifest)
    assert not target.dialect.table_exists(target.conn, target.table("orders"))
    target.conn.rollback()


def load_concurrently(first: LoadSpec, second: LoadSpec, one: Manifest, two: Manifest) -> dict[str, Any]:
    """Start the second load while the first holds its transaction open just before commit."""
    outcome: dict[str, Any] = {}

    def run(name: str, load_spec: LoadSpec, manifest: Manifest, hook: Any = None) -> None:
        try:
            outcome[name] = load_from_staging(load_spec, manifest, before_commit=hook)
        except Exception as exc:
            outcome[name] = exc

    later = threading.Thread(target=run, args=("second", second, two))

    def start_the_other() -> None:
        if not later.is_alive() and "second" not in outcome:
            later.start()
            later.join(0.5)  # the second load now waits on the lock (or, without one, loads alongside)

    run("first", first, one, start_the_other)
    later.join(60)
    return outcome


@pytest.mark.parametrize("kind", KINDS)
def test_two_pipelines_appending_into_one_table_at_once_the_second_is_refused(
    make_db: Any, tmp_path: Path, kind: str
) -> None:
    target = make_db(kind)
    one, two = stage(tmp_path / "one", 2_000), stage(tmp_path / "two", 2_000, run_id="run2")
    outcome = load_concurrently(spec(target, "shop_sync.orders"), spec(target, "shop_copy.orders"), one, two)
    assert outcome["first"].inserted == 2_000
    refused = outcome["second"]
    assert isinstance(refused, TargetOwnedError), refused
    assert "is loaded by pipeline shop_sync.orders (first load: run run1" in str(refused)
    assert "pipeline shop_copy.orders may not load into it" in str(refused)
    assert "target.shared: true" in str(refused)
    assert target.count("orders") == 2_000  # not doubled


@pytest.mark.parametrize("kind", KINDS)
def test_pipelines_declaring_the_target_shared_take_turns(make_db: Any, tmp_path: Path, kind: str) -> None:
    target = make_db(kind)
    one, two = stage(tmp_path / "one", 2_000), stage(tmp_path / "two", 2_000, run_id="run2", first=5_001)
    first, second = spec(target, "a.orders", shared=True), spec(target, "b.orders", shared=True)
    outcome = load_concurrently(first, second, one, two)
    assert outcome["first"].inserted == 2_000 and outcome["second"].inserted == 2_000, outcome
    assert target.count("orders") == 4_000 and len(set(target.ids("orders"))) == 4_000


def test_sharing_needs_every_pipeline_to_declare_it_and_a_dropped_table_frees_its_claims(
    make_db: Any, tmp_path: Path
) -> None:
    target = make_db("postgres")
    load_from_staging(spec(target, "a.orders"), stage(tmp_path / "a", 10))
    with pytest.raises(TargetOwnedError, match=r"this pipeline declares it shared but a\.orders did not"):
        load_from_staging(spec(target, "b.orders", shared=True), stage(tmp_path / "b", 10, "run2", 100))
    # The owner declares it shared too: its next load records that, then the other may load.
    load_from_staging(spec(target, "a.orders", shared=True), stage(tmp_path / "c", 10, "run3", 200))
    load_from_staging(spec(target, "b.orders", shared=True), stage(tmp_path / "d", 10, "run4", 300))
    # a.orders stops sharing: it is refused, naming b.orders as also loading the table.
    with pytest.raises(TargetOwnedError, match=r"pipeline a\.orders .* and also by|is loaded by pipeline b"):
        load_from_staging(spec(target, "a.orders"), stage(tmp_path / "e", 10, "run5", 400))
    assert target.count("orders") == 30
    target.run(f"DROP TABLE {target.qualified('orders')}")
    fresh = load_from_staging(spec(target, "c.orders"), stage(tmp_path / "f", 10, "run6", 500))
    assert fresh.inserted == 10 and fresh.created_table


def test_the_same_pipeline_and_spelling_of_the_table_count_as_one(make_db: Any, tmp_path: Path) -> None:
    target = make_db("postgres")
    load_from_staging(spec(target), stage(tmp_path / "a", 10))
    target.run(f"SET search_path TO {target.schema}")
    unqualified = replace(spec(target, "other.orders"), schema=None, ledger_schema=target.schema)
    info = replace(target.info, extra={**target.info.extra, "options": f"-c search_path={target.schema}"})
    with pytest.raises(TargetOwnedError, match=f"target table {target.schema}.orders is loaded by"):
        load_from_staging(replace(unqualified, connection=info), stage(tmp_path / "b", 10, "run2", 100))


def test_a_row_with_a_nul_character_is_quarantined_in_postgres(make_db: Any, tmp_path: Path) -> None:
    target = make_db("postgres")
    target.run(f"CREATE TABLE {target.qualified('orders')} (id BIGINT PRIMARY KEY, name TEXT)")
    names = [f"n{i}" for i in range(1, 101)]
    names[41] = "bad\x00value"
    batch = pa.RecordBatch.from_pydict({"id": list(range(1, 101)), "name": names}, schema=SCHEMA)
    with StageWriter(tmp_path / "nul", SCHEMA) as writer:
        writer.write(batch)
    manifest = manifest_of(writer)
    quarantine = target.table("sync_quarantine")
    load_spec = replace(spec(target), create_if_missing=False)
    result = load_from_staging(load_spec, manifest, on_load_error="quarantine", quarantine=quarantine)
    assert (result.inserted, result.quarantined) == (99, 1)
    rows = QuarantineWriter(target.dialect, target.conn, quarantine).read().to_pylist()
    assert json.loads(rows[0]["row_json"]) == {"id": 42, "name": f"bad{NUL_MARKER}value"}
    assert "\x00" not in (rows[0]["reason"] or "")


def lock_is_free(target: Any, identity: str) -> bool:
    """Ask from another connection whether the target lock of ``identity`` could be taken right now."""
    from airflow_provider_sync.dialects._ledger import lock_digest

    other = target.dialect.connect(target.info)
    try:
        if target.kind == "postgres":
            key = int.from_bytes(lock_digest(identity)[:8], "big", signed=True)
            return bool(target.dialect.scalar(other, f"SELECT pg_try_advisory_xact_lock({key})"))
        if target.kind == "mysql":
            name = f"sync:{lock_digest(identity).hex()[:40]}"
            return bool(target.dialect.scalar(other, f"SELECT IS_FREE_LOCK('{name}')"))
        other.execute("PRAGMA busy_timeout = 0")
        try:
            other.execute("BEGIN IMMEDIATE")
        except Exception:
            return False
        return True
    finally:
        other.rollback()
        other.close()


@pytest.mark.parametrize("kind", KINDS)
def test_the_load_holds_the_target_lock_until_it_ends(make_db: Any, tmp_path: Path, kind: str) -> None:
    target = make_db(kind)
    schema = target.schema or "main"
    identity = f"{schema}.{target.table('orders').name}"
    seen: list[bool] = []
    load_from_staging(
        spec(target),
        stage(tmp_path / "a", 10),
        before_commit=lambda: seen.append(lock_is_free(target, identity)),
    )
    assert seen == [False] and lock_is_free(target, identity)
    assert target.dialect.capabilities.target_lock != "none"


@pytest.mark.parametrize("kind", KINDS)
def test_a_first_upsert_that_quarantines_keeps_every_batch(make_db: Any, tmp_path: Path, kind: str) -> None:
    """Into an empty target the rows go straight in, batch by batch, each behind its savepoint: no batch
    may take the ones before it away (a bad row in the last batch is set apart, the rest all arrive)."""
    target = make_db(kind)
    names = [f"n{i}" for i in range(1, 301)]
    names[-1] = "x" * 50  # too long for the column below: the target rejects it
    target.run(f"CREATE TABLE {target.qualified('orders')} (id BIGINT PRIMARY KEY, name VARCHAR(20))")
    with StageWriter(tmp_path / "batches", SCHEMA) as writer:
        for start in range(0, 300, 100):
            chunk = {"id": list(range(start + 1, start + 101)), "name": names[start : start + 100]}
            writer.write(pa.RecordBatch.from_pydict(chunk, schema=SCHEMA))
    manifest = manifest_of(writer)
    load_spec = replace(spec(target), mode="upsert", keys=("id",), create_if_missing=False)
    quarantine = target.table("sync_quarantine")
    result = load_from_staging(load_spec, manifest, on_load_error="quarantine", quarantine=quarantine)
    expected = 300 if kind == "sqlite" else 299  # SQLite does not enforce VARCHAR lengths
    assert (result.inserted, result.quarantined) == (expected, 300 - expected)
    assert target.run(f"SELECT COUNT(*) FROM {target.qualified('orders')}")[0][0] == expected
