"""Every staged file is checked against the rows, bytes and SHA-256 its writer recorded in the manifest."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from airflow_provider_sync.staging import Manifest, StageWriter, schema_to_text
from airflow_provider_sync.staging.files import read_manifest
from airflow_provider_sync.staging.verify import StagedFileError

SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("note", pa.string())])


def rows(start: int, count: int) -> pa.RecordBatch:
    ids = list(range(start, start + count))
    return pa.RecordBatch.from_pydict({"id": ids, "note": [f"n{i}" for i in ids]}, schema=SCHEMA)


def staged(directory: Path, count: int, per_file: int = 1_000_000) -> Manifest:
    with StageWriter(directory, SCHEMA, rows_per_file=per_file) as writer:
        for start in range(0, count, 5_000):
            writer.write(rows(start, min(5_000, count - start)))
    return Manifest(
        "d", "r", "t", "extract", writer.files, writer.rows, schema_to_text(SCHEMA), parts=writer.parts
    )


def total(manifest: Manifest) -> int:
    return sum(batch.num_rows for batch in read_manifest(manifest))


def test_writer_records_rows_size_and_sha256_of_each_file(tmp_path: Path) -> None:
    manifest = staged(tmp_path / "s", 25_000, per_file=10_000)
    parts = manifest.staged_parts()
    assert [p.rows for p in parts] == [10_000, 10_000, 5_000]
    for part in parts:
        data = Path(part.file).read_bytes()
        assert part.size == len(data) and part.sha256 == hashlib.sha256(data).hexdigest()
    assert total(manifest) == 25_000
    # The JSON form travels through XCom and still checks.
    assert total(Manifest.from_json(json.loads(json.dumps(manifest.to_json())))) == 25_000


def test_a_smaller_file_under_a_bigger_manifest_is_refused(tmp_path: Path) -> None:
    """A 10k-row file put where the manifest recorded 100k rows: refused, naming both counts."""
    manifest = staged(tmp_path / "big", 100_000)
    small = staged(tmp_path / "small", 10_000)
    shutil.copyfile(small.files[0], manifest.files[0])
    with pytest.raises(StagedFileError) as caught:
        total(manifest)
    message = str(caught.value)
    assert manifest.files[0] in message
    assert "expected 100,000 rows" in message and "found 10,000 rows" in message


def test_a_bigger_file_is_refused_before_its_extra_rows_are_read(tmp_path: Path) -> None:
    manifest = staged(tmp_path / "small", 10_000)
    big = staged(tmp_path / "big", 30_000)
    shutil.copyfile(big.files[0], manifest.files[0])
    seen = 0
    with pytest.raises(StagedFileError, match="expected 10,000 rows"):
        for batch in read_manifest(manifest):
            seen += batch.num_rows
    assert seen <= 10_000


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    manifest = staged(tmp_path / "s", 20_000)
    path = Path(manifest.files[0])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        StagedFileError, match=rf"staged file {path}.*(cannot be read as Arrow|does not match)"
    ):
        total(manifest)


def test_a_changed_byte_is_refused_even_when_rows_still_count(tmp_path: Path) -> None:
    manifest = staged(tmp_path / "s", 1_000)
    path = Path(manifest.files[0])
    # Same rows, other values: rewrite the file with a different note in one row.
    changed = rows(0, 1_000).to_pydict()
    changed["note"][500] = "n5O0"
    with pa.ipc.new_stream(path, SCHEMA, options=pa.ipc.IpcWriteOptions(compression="zstd")) as out:
        out.write_batch(pa.RecordBatch.from_pydict(changed, schema=SCHEMA))
    with pytest.raises(StagedFileError, match=r"expected 1,000 rows.*found 1,000 rows.*sha256"):
        total(manifest)


def test_trailing_bytes_after_the_stream_are_refused(tmp_path: Path) -> None:
    manifest = staged(tmp_path / "s", 100)
    with Path(manifest.files[0]).open("ab") as handle:
        handle.write(b"\0" * 16)
    with pytest.raises(StagedFileError, match="does not match its manifest"):
        total(manifest)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    manifest = staged(tmp_path / "s", 100)
    Path(manifest.files[0]).unlink()
    with pytest.raises(StagedFileError, match=rf"staged file {manifest.files[0]} is missing"):
        total(manifest)


def test_check_first_refuses_before_yielding_any_row(tmp_path: Path) -> None:
    manifest = staged(tmp_path / "s", 10_000)
    with Path(manifest.files[0]).open("ab") as handle:
        handle.write(b"x")
    batches = read_manifest(manifest, check_first=True)
    with pytest.raises(
        StagedFileError, match=r"expected 10,000 rows, [\d,]+ bytes, sha256 \w+; found [\d,]+ bytes"
    ):
        next(batches)


def test_manifests_that_cannot_vouch_for_their_files_are_refused(tmp_path: Path) -> None:
    manifest = staged(tmp_path / "s", 100)
    data = manifest.to_json()
    without = Manifest.from_json({**data, "parts": []})
    with pytest.raises(StagedFileError, match=r"lists 1 staged file.*row counts and checksums for 0"):
        total(without)
    inflated = Manifest.from_json({**data, "rows": 1_000_000})
    with pytest.raises(StagedFileError, match="says 1,000,000 rows but its files were written with 100"):
        total(inflated)
    other = Manifest.from_json({**data, "parts": [{**data["parts"][0], "file": "/elsewhere.arrow"}]})
    with pytest.raises(StagedFileError, match=r"checksum is for /elsewhere\.arrow"):
        total(other)
    broken = Manifest.from_json({**data, "parts": [{"file": data["files"][0], "rows": "100"}]})
    with pytest.raises(StagedFileError, match="part 0: expected an object with file, rows, size, sha256"):
        total(broken)
    with pytest.raises(Exception, match="manifest version 1 is not supported"):
        Manifest.from_json({**data, "version": 1})


def test_pipeline_code_reads_staged_rows_only_through_checked_readers() -> None:
    """``read_staged`` does not check files; no step of the product may read through it."""
    package = Path(__file__).resolve().parents[3] / "airflow_provider_sync"
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.parent.name != "staging"
        and ("read_staged(" in path.read_text() or "open_stream(" in path.read_text())
    ]
    assert offenders == []
