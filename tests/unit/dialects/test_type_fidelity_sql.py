"""Declared types travel in the staged schema and become each target's own DDL (parse-checked)."""

from __future__ import annotations

import pyarrow as pa
import pytest
import sqlglot

from airflow_provider_sync.config.steps.encrypt import EncryptStep
from airflow_provider_sync.config.steps.mask import MaskStep
from airflow_provider_sync.config.steps.schema_map import SchemaMapStep
from airflow_provider_sync.core.encrypt import Encryptor
from airflow_provider_sync.core.keyring import Keyring
from airflow_provider_sync.core.mask import Masker
from airflow_provider_sync.core.schema_map import SchemaMapper
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects._arrow import rows_to_batch, schema_of
from airflow_provider_sync.dialects.declared import DeclaredType, declared_of, parse_declared
from airflow_provider_sync.dialects.types import Column, TableRef

SOURCE = {  # PostgreSQL's format_type() spellings
    "code": ("character(10)", pa.string()),
    "comment": ("character varying(44)", pa.string()),
    "amount": ("numeric(12,2)", pa.decimal128(12, 2)),
    "shipped": ("timestamp(3) without time zone", pa.timestamp("us")),
    "seen": ("timestamp(0) with time zone", pa.timestamp("us", tz="UTC")),
    "tod": ("time(3) without time zone", pa.time64("us")),
    "flag": ("boolean", pa.bool_()),
    "doc": ("jsonb", pa.string()),
    "payload": ("bytea", pa.binary()),
    "uid": ("uuid", pa.string()),
    "day": ("date", pa.date32()),
    "small": ("smallint", pa.int16()),
    "ratio": ("real", pa.float32()),
}


def _schema() -> pa.Schema:
    postgres = get_dialect("postgres")
    columns = [
        Column(name, db_type, kind, declared=postgres.declared_type(db_type))
        for name, (db_type, kind) in SOURCE.items()
    ]
    return schema_of([Column("id", "integer", pa.int32(), False), *columns])


EXPECTED = {
    "postgres": {
        "code": "character(10)", "comment": "character varying(44)", "amount": "numeric(12,2)",
        "shipped": "timestamp(3) without time zone", "seen": "timestamp(0) with time zone",
        "tod": "time(3) without time zone", "doc": "jsonb", "uid": "uuid", "small": "smallint",
        "ratio": "real",
    },
    "mysql": {
        "code": "CHAR(10)", "comment": "VARCHAR(44)", "amount": "DECIMAL(12,2)", "shipped": "DATETIME(3)",
        "seen": "DATETIME(0)", "tod": "TIME(3)", "doc": "JSON", "uid": "CHAR(36)", "payload": "LONGBLOB",
    },
    "mssql": {
        "code": "NCHAR(10)", "comment": "NVARCHAR(44)", "amount": "DECIMAL(12, 2)", "shipped": "DATETIME2(3)",
        "seen": "DATETIMEOFFSET(0)", "tod": "TIME(3)", "uid": "UNIQUEIDENTIFIER", "flag": "BIT",
    },
    "oracle": {
        "code": "NCHAR(10)", "comment": "NVARCHAR2(44)", "amount": "NUMBER(12, 2)", "shipped": "TIMESTAMP(3)",
        "seen": "TIMESTAMP(0) WITH TIME ZONE", "uid": "CHAR(36)", "payload": "BLOB",
    },
    "clickhouse": {
        "shipped": "DateTime64(3, 'UTC')", "amount": "Decimal(12, 2)", "uid": "UUID", "code": "String",
    },
    "sqlite": {"code": "CHAR(10)", "comment": "VARCHAR(44)", "amount": "DECIMAL TEXT(12,2)"},
}  # fmt: skip
SQLGLOT = {"postgres": "postgres", "mysql": "mysql", "mssql": "tsql", "oracle": "oracle"}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_declared_types_become_the_targets_ddl(name: str) -> None:
    dialect = get_dialect(name)
    schema = _schema()
    types = {field.name: dialect.sql_type(field) for field in schema}
    assert {column: types[column] for column in EXPECTED[name]} == EXPECTED[name]
    if name in SQLGLOT:
        ddl = dialect.create_table_sql(TableRef("lineitem", "sales"), schema, ["id"])
        parsed = sqlglot.parse_one(ddl, read=SQLGLOT[name])
        assert len(list(parsed.find_all(sqlglot.exp.ColumnDef))) == len(schema)


def test_without_a_descriptor_the_arrow_mapping_stays() -> None:
    plain = pa.field("code", pa.string())
    assert get_dialect("postgres").sql_type(plain) == "text"
    assert get_dialect("mysql").sql_type(plain) == "LONGTEXT"
    assert get_dialect("mysql").sql_type(plain, is_key=True) == "VARCHAR(255)"


def test_spellings_of_other_databases_are_understood() -> None:
    mysql, oracle, sqlite = get_dialect("mysql"), get_dialect("oracle"), get_dialect("sqlite")
    assert mysql.declared_type("datetime") == DeclaredType("timestamp", precision=0)
    assert mysql.declared_type("timestamp(3)") == DeclaredType("timestamptz", precision=3)
    assert mysql.declared_type("tinyint(1)") == DeclaredType("boolean")
    assert mysql.declared_type("int(11)") is None
    assert oracle.declared_type("DATE") == DeclaredType("timestamp", precision=0)
    assert oracle.declared_type("VARCHAR2(30 CHAR)") == DeclaredType("varchar", 30)
    assert sqlite.declared_type("DECIMAL TEXT(12,2)") == DeclaredType("numeric", precision=12, scale=2)
    assert parse_declared("nvarchar(max)") == DeclaredType("varchar")
    assert parse_declared("uniqueidentifier") == DeclaredType("uuid")
    assert parse_declared("integer[]") is None and parse_declared("time with time zone") is None


def test_mysql_keeps_rows_within_its_size_limit() -> None:
    wide = [
        Column(f"c{i}", "character varying(4000)", pa.string(), declared=DeclaredType("varchar", 4000))
        for i in range(6)
    ]
    ddl = get_dialect("mysql").create_table_sql(TableRef("wide"), schema_of(wide))
    assert ddl.count("VARCHAR(4000)") == 4 and ddl.count("LONGTEXT") == 2


def test_char_padding_is_dropped_on_reading() -> None:
    column = Column("code", "character(10)", pa.string(), declared=DeclaredType("char", 10))
    batch = rows_to_batch([("TRUCK     ",), (None,), ("  AIR     ",)], [column], lambda _c: None)
    assert batch.column(0).to_pylist() == ["TRUCK", None, "  AIR"]
    assert declared_of(batch.schema.field(0)) == DeclaredType("char", 10)


def test_rewritten_columns_lose_their_declared_type() -> None:
    schema = _schema()
    masked = Masker(
        MaskStep.model_validate({"columns": {"comment": "redact", "code": "null"}})
    ).output_schema(schema)
    assert declared_of(masked.field("comment")) is None
    assert declared_of(masked.field("code")) == DeclaredType("char", 10)
    keyring = Keyring({"k1": b"k" * 32}, "k1")
    step = EncryptStep.model_validate({"keyring_conn_id": "keys", "columns": {"code": "randomized"}})
    encrypted = Encryptor(step, keyring, "lineitem").output_schema(schema)
    assert (
        declared_of(encrypted.field("code")) is None
        and get_dialect("postgres").sql_type(encrypted.field("code")) == "text"
    )
    assert declared_of(encrypted.field("comment")) == DeclaredType("varchar", 44)


def test_schema_map_keeps_declared_types_of_columns_it_passes_through() -> None:
    step = SchemaMapStep.model_validate(
        {"rename": {"comment": "note"}, "cast": {"code": "string"}, "derive": {"twice": "small * 2"}}
    )
    mapped = SchemaMapper(step).output_schema(_schema())
    assert declared_of(mapped.field("note")) == DeclaredType("varchar", 44)
    assert declared_of(mapped.field("doc")) == DeclaredType("jsonb")
    assert declared_of(mapped.field("code")) is None
    assert get_dialect("postgres").sql_type(mapped.field("shipped")) == "timestamp(3) without time zone"
