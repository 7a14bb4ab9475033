"""A LOAD DATA warning names the column it is about (MariaDB spells it `db`.`table`.`column`)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.errors import TerminalError

pytestmark = pytest.mark.integration


def test_load_warnings_name_the_column_not_the_database(make_db: Any) -> None:
    db = make_db("mysql")
    db.run(f"CREATE TABLE {db.qualified('strict')} (id INT PRIMARY KEY, amount INT, code VARCHAR(3))")
    batch = pa.record_batch(
        [pa.array([1, 2]), pa.array(["12", "secret-value"]), pa.array(["ok", "toolong"])],
        names=["id", "amount", "code"],
    )
    db.dialect.begin_write(db.conn)
    with pytest.raises(TerminalError) as raised:
        db.dialect.bulk_insert(db.conn, db.table("strict"), [batch])
    db.conn.rollback()
    message = str(raised.value)
    assert "code 1366 column amount row 2" in message
    assert "code 1265 column code row 2" in message
    assert db.info.database not in message.replace(f"{db.info.database}.", "")  # only in the table name
    assert "secret-value" not in message
