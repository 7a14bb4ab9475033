"""Referentially complete, masked test-data subsets on real PostgreSQL, MariaDB and SQLite.

The source holds customers (half of them in Germany), their orders, the orders' items and the items'
products, with real foreign keys. ``airflow-sync subset`` keeps a sample of the German customers, every
order of theirs, every item of those orders and every product those items name (and no other product),
tokenizes the e-mail address in customers and in orders, and replaces the target tables: every foreign
key of the target resolves, no source e-mail or name is left in the target, and one e-mail has one
pseudonym in both tables. The targets of the servers carry foreign keys of their own, so a second run
(which must replace, not add) also proves the children-first delete and parents-first insert.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.namespaces import Database
from tests.integration.subset.subset_support import (
    CUSTOMERS,
    FOLLOW,
    ITEMS,
    SCHEMA,
    assert_complete_and_masked,
    create_tables,
    ids,
    run_cli,
    seed,
    write_pipeline,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("kind", "premade"), [("postgres", True), ("postgres", False), ("mysql", True), ("sqlite", True)]
)
def test_subset_is_referentially_complete_and_masked(
    kind: str,
    premade: bool,
    make_pair: Callable[[str], tuple[Database, Database]],
    connect: Callable[[Database, Database], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, target = make_pair(kind)
    seed(source)
    if premade:  # targets with foreign keys of their own: the load order must respect them
        create_tables(target)
    connect(source, target)
    subset = {"root": "customers", "where": "country = 'DE'", "sample": "25%", "seed": 7, "follow": FOLLOW}
    path = write_pipeline(tmp_path / "subset.yaml", source, target, subset)

    code, dry, err = run_cli(capsys, "--pipeline", str(path), "--dry-run")
    assert code == 0, err
    german = {c for c, _, _, country in CUSTOMERS if country == "DE"}
    assert dry is not None and dry["root_matching"] == len(german) == 20
    assert dry["root_kept"] == math.ceil(20 * 25 / 100) == 5
    # A dry run writes nothing (and creates no table).
    assert target.dialect.table_exists(target.conn, target.table("customers")) is premade
    assert not premade or target.count("customers") == 0

    code, result, err = run_cli(capsys, "--pipeline", str(path))
    assert code == 0, err
    assert result is not None
    kept = ids(target, "customers")
    assert len(kept) == 5 and kept <= german
    assert_complete_and_masked(target, kept)
    assert result["rows"] == {
        "customers": 5,
        "orders": target.count("orders"),
        "order_items": target.count("order_items"),
        "products": target.count("products"),
    }
    assert result["rows"] == {key: dry["rows"][key] for key in result["rows"]}

    # A second run replaces the contents (same rows: the sample is a keyed hash, not random).
    first = {name: target.rows(name, ["id"]) for name in SCHEMA}
    code, _, err = run_cli(capsys, "--pipeline", str(path))
    assert code == 0, err
    assert {name: target.rows(name, ["id"]) for name in SCHEMA} == first
    # The source is untouched.
    assert source.count("customers") == 40 and source.count("order_items") == len(ITEMS)
