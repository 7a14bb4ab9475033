"""A snapshot taken under concurrent writes, plus the binlog captured from its position, rebuilds the
table exactly: no change lost, none applied twice."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.mysql import MySQLDialect
from airflow_provider_sync.dialects.mysql_capture import capture_to_staging, snapshot_position_and_rows
from airflow_provider_sync.staging.files import read_manifest

pytestmark = pytest.mark.integration


def execute(conn: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
    cursor = conn.cursor()
    cursor.execute(sql, params or None)
    rows = cursor.fetchall() if cursor.description else None
    cursor.close()
    return rows


@pytest.fixture
def table(mysql_uri: str) -> Iterator[tuple[ConnectionInfo, str]]:
    info = ConnectionInfo.from_uri(mysql_uri)
    name = f"cdc{uuid.uuid4().hex[:8]}_snap"
    conn = MySQLDialect().connect(info)
    conn.autocommit(True)
    execute(conn, f"CREATE TABLE `{name}` (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40))")
    execute(conn, f"INSERT INTO `{name}` SELECT seq, seq, CONCAT('row ', seq) FROM seq_1_to_300")
    try:
        yield info, name
    finally:
        execute(conn, f"DROP TABLE IF EXISTS `{name}`")
        conn.close()


class Writer(threading.Thread):
    """Commits random inserts, updates, key updates and deletes (alone or several per transaction)."""

    def __init__(self, info: ConnectionInfo, name: str) -> None:
        super().__init__(daemon=True)
        self.info, self.name = info, name
        self.stop = threading.Event()
        self.commits = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._write()
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def _write(self) -> None:
        conn = MySQLDialect().connect(self.info)
        rnd = random.Random(20261202)
        next_id = 1000
        t = f"`{self.name}`"
        try:
            while not self.stop.is_set():
                for _ in range(rnd.choice([1, 1, 1, 3])):
                    action, some = rnd.random(), rnd.randrange(1, next_id)
                    if action < 0.35:
                        execute(conn, f"INSERT INTO {t} VALUES (%s, %s, 'new')", (next_id, next_id))
                        next_id += 1
                    elif action < 0.7:
                        execute(conn, f"UPDATE {t} SET v = v + 1, note = 'updated' WHERE id = %s", (some,))
                    elif action < 0.85:
                        execute(conn, f"UPDATE {t} SET id = %s WHERE id = %s", (next_id, some))
                        next_id += 1
                    else:
                        execute(conn, f"DELETE FROM {t} WHERE id = %s", (some,))
                conn.commit()
                self.commits += 1
                time.sleep(0.002)
        finally:
            conn.close()


def replay(state: dict[int, dict[str, Any]], changes: list[dict[str, Any]]) -> None:
    """Apply change rows by ``_sync_seq``, refusing what a lost or doubled change would cause."""
    for change in sorted(changes, key=lambda c: c["_sync_seq"]):
        row = {k: change[k] for k in ("id", "v", "note")}
        key, op = row["id"], change["_sync_op"]
        if op == "insert":
            assert key not in state, f"insert of existing id {key}: a change applied twice"
            state[key] = row
        elif op == "update":
            assert key in state, f"update of missing id {key}: a change lost"
            state[key] = row
        else:
            assert state.pop(key, None) is not None, f"delete of missing id {key}: a change lost"


def test_snapshot_under_writes_plus_capture_rebuilds_the_table(
    table: tuple[ConnectionInfo, str], tmp_path: Path
) -> None:
    info, name = table
    writer = Writer(info, name)
    writer.start()
    time.sleep(0.2)
    with snapshot_position_and_rows(info, name, batch_size=40) as snap:
        at_snapshot = writer.commits
        time.sleep(0.3)  # commits land after the snapshot, before its rows are read
        snapshot_rows = []
        for batch in snap.batches:
            snapshot_rows.extend(batch.to_pylist())
            time.sleep(0.02)
        during = writer.commits - at_snapshot
    time.sleep(0.2)
    writer.stop.set()
    writer.join(10)
    assert writer.error is None
    assert during > 20, "the writer must commit while the snapshot is read"
    assert {r["_sync_op"] for r in snapshot_rows} == {"insert"}
    assert {r["_sync_position"] for r in snapshot_rows} == {snap.position.text}

    manifest = capture_to_staging(info, name, None, (), snap.position, tmp_path / "c", "snapdag", "r1")
    changes = [row for batch in read_manifest(manifest) for row in batch.to_pylist()]
    assert len(changes) > during  # every commit after the snapshot is in the binlog range
    assert all(c["_sync_position"] > snap.position.text for c in changes)

    state = {r["id"]: {k: r[k] for k in ("id", "v", "note")} for r in snapshot_rows}
    replay(state, changes)
    conn = MySQLDialect().connect(info)
    final = execute(conn, f"SELECT id, v, note FROM `{name}` ORDER BY id")
    conn.close()
    assert [tuple(state[k].values()) for k in sorted(state)] == list(final)
