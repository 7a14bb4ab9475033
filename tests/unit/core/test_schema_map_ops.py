"""Schema mapping operations, error policies, lookups and the predicted output schema."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.config.steps.schema_map import SchemaMapStep
from airflow_provider_sync.core.schema_map import ConversionError, MapResult, SchemaMapper
from airflow_provider_sync.errors import IncompatibleSchemaError, TerminalError


def run(body: dict[str, Any], data: dict[str, Any], lookups: dict[str, pa.Table] | None = None) -> MapResult:
    mapper = SchemaMapper(SchemaMapStep.model_validate(body))
    batch = pa.record_batch(data)
    result = mapper.apply(batch, lookups)
    schemas = {name: table.schema for name, table in (lookups or {}).items()}
    assert mapper.output_schema(batch.schema, schemas) == result.batch.schema
    return result


def test_rename_select_drop_and_order() -> None:
    result = run(
        {"rename": {"a": "alpha"}, "drop": ["b"], "select": ["c", "alpha"]},
        {"a": [1], "b": [2], "c": [3], "d": [4]},
    )
    assert result.batch.to_pylist() == [{"c": 3, "alpha": 1}]


def test_rename_onto_an_existing_column_is_refused() -> None:
    with pytest.raises(IncompatibleSchemaError, match=r"rename targets \['b'\] already exist"):
        run({"rename": {"a": "b"}}, {"a": [1], "b": [2]})


def test_missing_columns_are_named_with_the_operation() -> None:
    with pytest.raises(IncompatibleSchemaError, match="cast names column 'amount'"):
        run({"cast": {"amount": "integer"}}, {"amnt": ["1"]})
    with pytest.raises(IncompatibleSchemaError, match="drop names column 'x'"):
        run({"drop": ["x"]}, {"a": [1]})


def test_cast_policies() -> None:
    data = {"n": ["1", " 2 ", "x", None, ""]}
    with pytest.raises(ConversionError, match=r"cast on column 'n': 2 value\(s\) do not convert to int64"):
        run({"cast": {"n": "int64"}}, data)
    nulled = run({"cast": {"n": "int64"}, "on_cast_error": "null"}, data)
    assert nulled.batch.column("n").to_pylist() == [1, 2, None, None, None]
    assert nulled.counts == {"cast.n": 2} and nulled.rejected.num_rows == 0
    quarantined = run({"cast": {"n": "int64"}, "on_cast_error": "quarantine"}, data)
    assert quarantined.batch.column("n").to_pylist() == [1, 2, None]
    assert quarantined.rejected.rows.column("n").to_pylist() == ["x", ""]  # rows as they came in
    assert quarantined.rejected.rule.to_pylist() == ["cast.n", "cast.n"]
    assert quarantined.rejected.reason.to_pylist() == ["n: do not convert to int64"] * 2


def test_cast_to_many_types() -> None:
    result = run(
        {
            "cast": {
                "d": "decimal(8,2)",
                "day": "date",
                "ts": "timestamp",
                "tz": "timestamptz",
                "b": "boolean",
                "s": "string",
                "f": "float32",
            }
        },
        {
            "d": ["12.34", "1"],
            "day": ["2024-02-29", None],
            "ts": ["2024-01-01 10:00:00", "2024-01-01T10:00:00.5"],
            "tz": ["2024-01-01T10:00:00+02:00", "2024-01-01T10:00:00Z"],
            "b": ["true", "0"],
            "s": [1, 2],
            "f": [1, 2],
        },
    )
    row = result.batch.to_pylist()[0]
    assert result.batch.schema.field("d").type == pa.decimal128(8, 2)
    assert row["day"] == dt.date(2024, 2, 29)
    assert row["ts"] == dt.datetime(2024, 1, 1, 10)
    assert row["tz"] == dt.datetime(2024, 1, 1, 8, tzinfo=dt.timezone.utc)
    assert row["b"] is True and row["s"] == "1"
    assert result.batch.column("d").to_pylist()[1] == Decimal("1.00")


def test_decimal_cast_that_would_lose_digits_is_an_error() -> None:
    result = run({"cast": {"d": "decimal(4,1)"}, "on_cast_error": "null"}, {"d": ["1.25", "1.5"]})
    assert result.batch.column("d").to_pylist() == [None, Decimal("1.5")]


def test_normalizers() -> None:
    result = run(
        {
            "normalize": {"email": "email", "phone": "phone", "name": ["trim", "upper"], "code": "lower"},
            "phone_default_country_code": "44",
        },
        {
            "email": ["  John.Doe@Example.COM ", None],
            "phone": ["020 7946 0958", "not a phone"],
            "name": ["  ñandú ", None],
            "code": ["ABC", "Déjà"],
        },
    )
    assert result.batch.to_pylist() == [
        {"email": "john.doe@example.com", "phone": "+442079460958", "name": "ÑANDÚ", "code": "abc"},
        {"email": None, "phone": None, "name": None, "code": "déjà"},
    ]
    assert result.counts == {"normalize.phone": 1}


def test_parse_dates_with_formats() -> None:
    result = run(
        {
            "parse_dates": {
                "d": "%d/%m/%Y",
                "t": "%d/%m/%Y %H:%M",
                "z": {"format": "%Y-%m-%d", "to": "timestamptz"},
            },
            "on_cast_error": "null",
        },
        {
            "d": ["29/02/2024", "31/02/2024", "1/2/2024"],
            "t": ["01/02/2024 10:30", "x", None],
            "z": ["2024-01-01", None, "bad"],
        },
    )
    assert result.batch.column("d").to_pylist() == [dt.date(2024, 2, 29), None, dt.date(2024, 2, 1)]
    assert result.batch.column("t").to_pylist() == [dt.datetime(2024, 2, 1, 10, 30), None, None]
    assert result.batch.schema.field("z").type == pa.timestamp("us", tz="UTC")
    assert result.counts == {"parse_dates.d": 1, "parse_dates.t": 1, "parse_dates.z": 1}


def test_split_from_start_and_end() -> None:
    data = {"full_name": ["Mary Ann Smith", "Cher", None, ""]}
    left = run({"split": {"full_name": {"into": ["first", "rest"]}}}, data).batch
    assert left.column("first").to_pylist() == ["Mary", "Cher", None, ""]
    assert left.column("rest").to_pylist() == ["Ann Smith", None, None, None]
    right = run({"split": {"full_name": {"into": ["given", "family"], "from_end": True}}}, data).batch
    assert right.column("given").to_pylist() == ["Mary Ann", "Cher", None, ""]
    assert right.column("family").to_pylist() == ["Smith", None, None, None]
    three = run({"split": {"d": {"into": ["y", "m", "day"], "separator": "-"}}}, {"d": ["2024-01-31"]}).batch
    assert three.to_pylist() == [{"d": "2024-01-31", "y": "2024", "m": "01", "day": "31"}]


def test_concat_skips_or_propagates_nulls() -> None:
    data = {"first": ["Ada", None, "Bo", None], "last": ["Lovelace", "X", None, None], "n": [1, 2, 3, 4]}
    skip = run({"concat": {"full": {"columns": ["first", "last", "n"], "separator": " "}}}, data).batch
    assert skip.column("full").to_pylist() == ["Ada Lovelace 1", "X 2", "Bo 3", "4"]
    strict = run({"concat": {"full": {"columns": ["first", "last"], "skip_nulls": False}}}, data).batch
    assert strict.column("full").to_pylist() == ["AdaLovelace", None, None, None]


def test_derive_defaults_and_constants() -> None:
    result = run(
        {
            "derive": {"engagement_seconds": "duration_ms / 1000", "is_long": "duration_ms > 60000"},
            "defaults": {"status": "new", "score": 0},
            "constants": {"source_system": "crm", "status_version": 2},
        },
        {"duration_ms": [1500, None, 120000], "status": [None, "paid", None]},
    )
    assert result.batch.to_pylist() == [
        {"duration_ms": 1500, "status": "new", "engagement_seconds": 1.5, "is_long": False, "score": 0,
         "source_system": "crm", "status_version": 2},
        {"duration_ms": None, "status": "paid", "engagement_seconds": None, "is_long": None, "score": 0,
         "source_system": "crm", "status_version": 2},
        {"duration_ms": 120000, "status": "new", "engagement_seconds": 120.0, "is_long": True, "score": 0,
         "source_system": "crm", "status_version": 2},
    ]  # fmt: skip


def test_default_that_does_not_fit_the_type() -> None:
    with pytest.raises(IncompatibleSchemaError, match="default for 'n'"):
        run({"defaults": {"n": "abc"}}, {"n": pa.array([None, 1], pa.int64())})


REFERENCE = pa.table({"iso2": ["GB", "DE"], "name": ["United Kingdom", "Germany"], "eu": [False, True]})
LOOKUP = {"conn_id": "ref_db", "table": "ref.countries", "key": "country", "ref_key": "iso2"}


def test_lookup_adds_columns_in_row_order() -> None:
    result = run(
        {"lookup": [{**LOOKUP, "columns": {"name": "country_name", "eu": "in_eu"}}]},
        {"country": ["DE", "GB", None, "DE"]},
        {"ref_db:ref.countries": REFERENCE},
    )
    assert result.batch.column("country_name").to_pylist() == ["Germany", "United Kingdom", None, "Germany"]
    assert result.batch.column("in_eu").to_pylist() == [True, False, None, True]
    assert result.counts == {}


def test_lookup_missing_key_policies() -> None:
    data = {"country": ["GB", "FR", None]}
    lookups = {"ref_db:ref.countries": REFERENCE}
    nulled = run({"lookup": [{**LOOKUP, "columns": ["name"]}]}, data, lookups)
    assert nulled.batch.column("name").to_pylist() == ["United Kingdom", None, None]
    assert nulled.counts == {"lookup.country": 1}
    with pytest.raises(ConversionError, match=r"have no match in ref\.countries"):
        run({"lookup": [{**LOOKUP, "columns": ["name"], "on_missing": "fail"}]}, data, lookups)
    quarantined = run(
        {"lookup": [{**LOOKUP, "columns": ["name"], "on_missing": "quarantine"}]}, data, lookups
    )
    assert quarantined.batch.num_rows == 2
    assert quarantined.rejected.rows.to_pylist() == [{"country": "FR"}]
    assert quarantined.rejected.rule.to_pylist() == ["lookup.country"]


def test_lookup_casts_key_types_and_refuses_duplicate_reference_keys() -> None:
    numeric = pa.table({"id": pa.array([1, 2], pa.int32()), "label": ["one", "two"]})
    spec = {"conn_id": "c", "table": "labels", "key": "k", "ref_key": "id", "columns": ["label"]}
    result = run({"lookup": [spec]}, {"k": pa.array([2, 1], pa.int64())}, {"c:labels": numeric})
    assert result.batch.column("label").to_pylist() == ["two", "one"]
    duplicated = pa.table({"id": [1, 1], "label": ["a", "b"]})
    with pytest.raises(TerminalError, match="repeats values in key column 'id'"):
        run({"lookup": [spec]}, {"k": [1]}, {"c:labels": duplicated})
    with pytest.raises(TerminalError, match="needs its reference table"):
        run({"lookup": [spec]}, {"k": [1]}, {})


def test_output_schema_needs_lookup_schemas() -> None:
    mapper = SchemaMapper(SchemaMapStep.model_validate({"lookup": [{**LOOKUP, "columns": ["name"]}]}))
    with pytest.raises(TerminalError, match="needs the schema of lookup table"):
        mapper.output_schema(pa.schema([("country", pa.string())]))


def test_operations_run_in_documented_order_and_metadata_accumulates() -> None:
    mapper = SchemaMapper(
        SchemaMapStep.model_validate(
            {
                "rename": {"amt": "amount"},
                "cast": {"amount": "float64"},
                "derive": {"double": "amount * 2"},
                "drop": ["amount"],
                "on_cast_error": "quarantine",
            }
        )
    )
    first = mapper.apply(pa.record_batch({"amt": ["1.5", "x"]}))
    second = mapper.apply(pa.record_batch({"amt": ["2"]}))
    assert first.batch.to_pylist() == [{"double": 3.0}]
    assert second.batch.to_pylist() == [{"double": 4.0}]
    assert mapper.metadata() == {
        "rows_in": 3,
        "rows_out": 2,
        "rows_quarantined": 1,
        "values_affected": {"cast.amount": 1},
    }
