"""deletes.soft_delete_column: rows the source flags leave the target, in the load's transaction."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.pipeline.load import LoadResult, load_from_staging
from airflow_provider_sync.pipeline.specs import LoadSpec
from tests.integration.cross_database.test_sync_engine import SAME, Sync

pytestmark = pytest.mark.integration
T0 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.timezone.utc)
COLUMNS = [
    ("id", "int"),
    ("name", "text"),
    ("is_deleted", "bool"),
    ("deleted_at", "tstz"),
    ("updated_at", "tstz"),
]
NAMES = [name for name, _ in COLUMNS]


def _at(seconds: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def _row(key: int, seconds: int, *, name: str | None = None, deleted: bool = False, flag: str = "") -> tuple:
    """A source row; ``deleted`` sets the flag column ``flag`` (true, or a deletion time)."""
    is_deleted = deleted and flag == "is_deleted"
    deleted_at = _at(1000) if deleted and flag == "deleted_at" else None
    return (key, name or f"n{key}", is_deleted, deleted_at, _at(seconds))


def _replace(source: Any, rows: list[tuple]) -> None:
    keys = ", ".join(str(row[0]) for row in rows)
    source.run(f"DELETE FROM {source.qualified('items')} WHERE {source.dialect.quote('id')} IN ({keys})")
    source.insert("items", NAMES, rows)


class FlagSync(Sync):
    def __init__(self, *args: Any, flag: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flag = flag

    def load(
        self, manifest: Any, mode: str = "upsert", keys: tuple[str, ...] = ("id",), **options: Any
    ) -> Any:
        spec = LoadSpec(
            self.target.info,
            table=self.target.name(self.target_table),
            schema=self.target.schema,
            mode="upsert",
            keys=keys,
            pipeline="soft-delete-tests",
            soft_delete_column=self.flag,
        )
        return load_from_staging(spec, manifest, **options)


@pytest.mark.parametrize(("source_kind", "target_kind"), SAME)
@pytest.mark.parametrize("flag", ["is_deleted", "deleted_at"])
def test_flagged_rows_are_deleted_and_counted(
    make_db: Any, tmp_path: Path, source_kind: str, target_kind: str, flag: str
) -> None:
    source, target = make_db(source_kind), make_db(target_kind)
    source.create("items", COLUMNS, ["id"])
    source.insert("items", NAMES, [_row(i, i) for i in range(1, 7)])
    sync = FlagSync(source, target, tmp_path, "items", "items", flag=flag)
    _, first, watermark = sync.run(None)
    assert (first.inserted, first.deleted, first.flagged) == (6, 0, 0)

    # 2 and 5 are deleted at the source (flagged, cursor moved), 3 changes, 9 arrives already deleted.
    _replace(source, [_row(2, 20, deleted=True, flag=flag), _row(5, 21, deleted=True, flag=flag)])
    _replace(source, [_row(3, 22, name="changed")])
    source.insert("items", NAMES, [_row(9, 23, deleted=True, flag=flag)])

    _, second, _ = sync.run(watermark)
    assert isinstance(second, LoadResult)
    assert (second.updated, second.inserted, second.deleted, second.flagged) == (1, 0, 2, 3)
    assert [row[:2] for row in target.rows("items", ["id"])] == [
        (1, "n1"),
        (3, "changed"),
        (4, "n4"),
        (6, "n6"),
    ]
    assert "2 deleted (3 flagged)" in second.summary()


def test_a_failed_load_keeps_the_rows_it_would_have_deleted(make_db: Any, tmp_path: Path) -> None:
    source, target = make_db("postgres"), make_db("postgres")
    source.create("items", COLUMNS, ["id"])
    source.insert("items", NAMES, [_row(i, i) for i in range(1, 4)])
    sync = FlagSync(source, target, tmp_path, "items", "items", flag="is_deleted")
    _, _, watermark = sync.run(None)
    _replace(source, [_row(2, 30, deleted=True, flag="is_deleted")])
    manifest = sync.extract(watermark)

    def crash() -> None:
        raise RuntimeError("lost before the commit")

    with pytest.raises(RuntimeError, match="lost before the commit"):
        sync.load(manifest, before_commit=crash)
    assert target.ids("items") == [1, 2, 3]
    assert sync.load(manifest).deleted == 1
    assert target.ids("items") == [1, 3]


def test_the_flag_column_must_be_staged(make_db: Any, tmp_path: Path) -> None:
    from airflow_provider_sync.errors import IncompatibleSchemaError

    source, target = make_db("sqlite"), make_db("sqlite")
    source.create("items", COLUMNS, ["id"])
    source.insert("items", NAMES, [_row(1, 1)])
    sync = FlagSync(source, target, tmp_path, "items", "items", flag="gone")
    with pytest.raises(
        IncompatibleSchemaError, match=r"deletes\.soft_delete_column 'gone' is not among the staged"
    ):
        sync.run(None)
