"""Local CSV, JSON lines and Parquet files into SQLite through dag.test(): by file (the ledger commits after
the load, a second run reads only new or changed files), by cursor, and bad CSV lines into quarantine."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.files.conftest import execute, rows, stored_variable

pytestmark = pytest.mark.integration


def _rewrite(path: Path, text: str) -> None:
    """Rewrite a file so its mtime surely moves (some filesystems keep whole seconds)."""
    before = path.stat().st_mtime
    path.write_text(text)
    os.utime(path, (before + 5, before + 5))


def test_csv_by_file_reads_only_new_or_changed_files(
    file_pipeline: Callable[..., Any], warehouse: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_text("id,name,amount\n1,apple,1.5\n2,pear,2\n")
    (folder / "b.csv").write_text("id,name,amount\n3,plum,3.25\n")
    run = file_pipeline(f"path: {folder}/*.csv\nformat: csv")
    run()
    assert rows(warehouse, "SELECT id, name, amount FROM items ORDER BY id") == [
        (1, "apple", 1.5),
        (2, "pear", 2.0),
        (3, "plum", 3.25),
    ]
    ledger = stored_variable(run.dag_id)["files"]
    assert sorted(ledger) == [str(folder / "a.csv"), str(folder / "b.csv")]
    assert ledger[str(folder / "a.csv")]["size"] == (folder / "a.csv").stat().st_size

    # A row of the unchanged file is edited in the target: it stays edited only if a.csv is not re-read.
    execute(warehouse, "UPDATE items SET name = 'edited' WHERE id = 1")
    _rewrite(folder / "b.csv", "id,name,amount\n3,PLUM,3.25\n")  # same size, new content
    (folder / "c.csv").write_text("id,name,amount\n4,fig,4\n5,kiwi,5.5\n")
    run()
    assert rows(warehouse, "SELECT id, name, amount FROM items ORDER BY id") == [
        (1, "edited", 1.5),
        (2, "pear", 2.0),
        (3, "PLUM", 3.25),
        (4, "fig", 4.0),
        (5, "kiwi", 5.5),
    ]
    assert len(stored_variable(run.dag_id)["files"]) == 3

    # Nothing new: nothing is read, the target keeps its edit.
    run()
    assert rows(warehouse, "SELECT name FROM items WHERE id = 1") == [("edited",)]


def test_a_bad_csv_line_goes_to_quarantine_with_file_and_line(
    file_pipeline: Callable[..., Any], warehouse: Path, tmp_path: Path
) -> None:
    source = tmp_path / "orders.csv"
    source.write_text("id;name\n1;ok\n2;bad;extra\n3;NA\n4;fine\n")
    run = file_pipeline(f'path: {source}\nformat: csv\ncsv:\n  delimiter: ";"\n  null_values: ["NA"]')
    run()
    assert rows(warehouse, "SELECT id, name FROM items ORDER BY id") == [(1, "ok"), (3, None), (4, "fine")]
    quarantined = rows(
        warehouse, "SELECT table_name, step, rule, reason, row_json FROM sync_quarantine ORDER BY reason"
    )
    assert len(quarantined) == 1
    table_name, step, rule, reason, row_json = quarantined[0]
    assert (table_name, step, rule) == ("items", "extract", "bad_line")
    assert reason == f"{source} line 3: expected 2 fields, got 3"
    assert json.loads(row_json) == {"file": str(source), "line": 3, "text": "2;bad;extra"}


@pytest.mark.parametrize("file_format", ["parquet", "jsonl"])
def test_parquet_and_json_lines_files_load_with_their_types(
    file_pipeline: Callable[..., Any], warehouse: Path, tmp_path: Path, file_format: str
) -> None:
    folder = tmp_path / "events"
    folder.mkdir()
    first = [{"id": 1, "kind": "click", "score": 0.5}, {"id": 2, "kind": "view", "score": None}]
    second = [{"id": 3, "kind": "buy", "score": 9.75}]
    _write(folder / f"one.{file_format}", first, file_format)
    run = file_pipeline(f"path: {folder}\nformat: {file_format}")
    run()
    assert rows(warehouse, "SELECT id, kind, score FROM items ORDER BY id") == [
        (1, "click", 0.5),
        (2, "view", None),
    ]
    execute(warehouse, "UPDATE items SET kind = 'edited' WHERE id = 1")
    _write(folder / f"two.{file_format}", second, file_format)
    run()
    assert rows(warehouse, "SELECT id, kind, score FROM items ORDER BY id") == [
        (1, "edited", 0.5),
        (2, "view", None),
        (3, "buy", 9.75),
    ]


def _write(path: Path, records: list[dict[str, Any]], file_format: str) -> None:
    if file_format == "parquet":
        pq.write_table(pa.Table.from_pylist(records), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_by_cursor_reads_only_rows_past_the_watermark(
    file_pipeline: Callable[..., Any], warehouse: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "clicks"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"id": 1, "seq": 10, "v": "a"}\n{"id": 2, "seq": 20, "v": "b"}\n')
    run = file_pipeline(
        f"path: {folder}/*.jsonl\nformat: jsonl\nincremental_by: cursor",
        incremental="strategy: sequence\ncolumn: seq",
    )
    run()
    assert rows(warehouse, "SELECT id, seq, v FROM items ORDER BY id") == [(1, 10, "a"), (2, 20, "b")]
    assert stored_variable(run.dag_id)["cursor"] == 20
    execute(warehouse, "UPDATE items SET v = 'edited' WHERE id = 2")
    time.sleep(0.01)
    # A row at or below the watermark (id 5, seq 15) is not read again; seq 30 is.
    (folder / "b.jsonl").write_text('{"id": 5, "seq": 15, "v": "late"}\n{"id": 6, "seq": 30, "v": "c"}\n')
    run()
    assert rows(warehouse, "SELECT id, seq, v FROM items ORDER BY id") == [
        (1, 10, "a"),
        (2, 20, "edited"),
        (6, 30, "c"),
    ]
    assert stored_variable(run.dag_id)["cursor"] == 30


def test_by_cursor_with_a_timestamp_column_in_csv(
    file_pipeline: Callable[..., Any], warehouse: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "ts"
    folder.mkdir()
    (folder / "a.csv").write_text("id,at\n1,2026-01-01 10:00:00\n2,2026-01-01 11:00:00\n")
    run = file_pipeline(
        f"path: {folder}\nformat: csv\nincremental_by: cursor", incremental="strategy: timestamp\ncolumn: at"
    )
    run()
    assert stored_variable(run.dag_id)["cursor"] == {"timestamp": "2026-01-01T11:00:00+00:00"}
    (folder / "b.csv").write_text(
        "id,at\n3,2026-01-01 11:00:00\n4,2026-01-01 09:00:00\n5,2026-01-02 00:00:00\n"
    )
    run()
    # id 3 ties the watermark's cursor with a greater key: read; id 4 lies before it: not read.
    assert [r[0] for r in rows(warehouse, "SELECT id FROM items ORDER BY id")] == [1, 2, 3, 5]


def test_a_path_with_no_files_yet_skips_the_run(
    file_pipeline: Callable[..., Any], warehouse: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    run = file_pipeline(f"path: {folder}/*.parquet\nformat: parquet")
    run()  # skipped: no file to read, no schema to create the target from
    assert stored_variable(run.dag_id) is None
    pq.write_table(pa.Table.from_pylist([{"id": 7}]), folder / "late.parquet")
    run()
    assert rows(warehouse, "SELECT id FROM items") == [(7,)]


def test_csv_without_header_in_latin1_with_named_columns(
    file_pipeline: Callable[..., Any], warehouse: Path, tmp_path: Path
) -> None:
    source = tmp_path / "people.csv"
    source.write_bytes("1|Zoë|-\n2|Jürgen|7\n".encode("latin1"))
    run = file_pipeline(
        f"path: {source}\nformat: csv\ncsv:\n  delimiter: '|'\n  header: false\n"
        "  column_names: [id, name, visits]\n  encoding: latin1\n  null_values: ['-']"
    )
    run()
    assert rows(warehouse, "SELECT id, name, visits FROM items ORDER BY id") == [
        (1, "Zoë", None),
        (2, "Jürgen", 7),
    ]


def test_a_failed_load_leaves_the_ledger_so_the_next_run_reads_the_files_again(
    file_pipeline: Callable[..., Any],
    run_pipeline: Callable[..., Any],
    warehouse: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_sync.errors import TransientError
    from airflow_provider_sync.operators.load import LoadOperator

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_text("id,name,amount\n1,apple,1.5\n")
    run = file_pipeline(f"path: {folder}/*.csv\nformat: csv")
    run()
    (folder / "b.csv").write_text("id,name,amount\n2,pear,2\n")
    before = stored_variable(run.dag_id)

    def lost(self: Any, context: Any) -> Any:
        raise TransientError("target connection lost")

    original = LoadOperator.run
    monkeypatch.setattr(LoadOperator, "run", lost)
    assert run_pipeline(run.dag_id).state == "failed"
    assert stored_variable(run.dag_id) == before, "the ledger is committed only after a load"
    monkeypatch.setattr(LoadOperator, "run", original)
    run()
    assert rows(warehouse, "SELECT id, name FROM items ORDER BY id") == [(1, "apple"), (2, "pear")]
    assert len(stored_variable(run.dag_id)["files"]) == 2
