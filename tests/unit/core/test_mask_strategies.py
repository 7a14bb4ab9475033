"""Masking strategies: exact outputs, NULLs, unicode, long values, determinism and secrets."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.config.steps.mask import MaskStep
from airflow_provider_sync.core.mask import (
    REDACTED,
    Masker,
    mask_email,
    mask_letters_digits,
    mask_partial,
    mask_phone,
)
from airflow_provider_sync.errors import IncompatibleSchemaError, KeyringError

SECRET = b"a-test-secret-of-32-characters!!"


def masked(
    rule: Any, values: list[Any], type_: pa.DataType | None = None, secret: bytes = SECRET
) -> list[Any]:
    step = MaskStep.model_validate({"columns": {"c": rule}, "secret_conn_id": "mask_secret"})
    batch = pa.record_batch({"c": pa.array(values, type_), "other": list(range(len(values)))})
    out = Masker(step, secret).mask(batch)
    assert out.column("other").to_pylist() == list(range(len(values)))
    return list(out.column("c").to_pylist())


def test_redact_replace_and_null() -> None:
    assert masked("redact", ["secret", "", None, "ü"]) == [REDACTED, REDACTED, None, REDACTED]
    assert masked({"strategy": "replace", "value": "n/a"}, ["x", None]) == ["n/a", None]
    assert masked({"strategy": "replace", "value": 0}, [1.5, None], pa.float64()) == [0.0, None]
    assert masked(None, ["x", None]) == [None, None]
    assert masked("null", [1, 2], pa.int64()) == [None, None]


def test_null_keeps_column_type() -> None:
    step = MaskStep.model_validate({"columns": {"n": "null"}})
    out = Masker(step).mask(pa.record_batch({"n": pa.array([1, 2], pa.int32())}))
    assert out.schema.field("n").type == pa.int32()


def test_redact_refuses_non_text_and_replace_refuses_wrong_type() -> None:
    with pytest.raises(IncompatibleSchemaError, match="redact on column 'c' needs a text column"):
        masked("redact", [1, 2])
    with pytest.raises(IncompatibleSchemaError, match="does not fit the column type int64"):
        masked({"strategy": "replace", "value": "abc"}, [1, 2])


@pytest.mark.parametrize(
    ("first", "last", "value", "expected"),
    [
        (0, 4, "4111-1111-1111-1234", "****-****-****-1234"),
        (2, 2, "Jöhn Smïth", "Jö** ***th"),
        (1, 1, "ab", "**"),  # too short to reveal anything
        (1, 1, "abc", "a*c"),
        (0, 0, "a-b c", "*-* *"),
        (3, 0, "日本語テキスト", "日本語****"),
        (1, 1, "", ""),
    ],
)
def test_partial(first: int, last: int, value: str, expected: str) -> None:
    assert mask_partial(pa.array([value, None]), first, last).to_pylist() == [expected, None]


def test_partial_with_custom_char_and_long_values() -> None:
    long = "a" * 50_000 + "Z"
    rule = {"strategy": "partial", "keep_first": 1, "keep_last": 1, "mask_char": "#"}
    [out] = masked(rule, [long])
    assert out == "a" + "#" * 49_999 + "Z"
    assert mask_partial(pa.array(["ab\\cd"]), 1, 1, "\\").to_pylist() == ["a\\\\\\d"]


def test_email() -> None:
    values = ["john.doe@example.com", "J@x.org", "no-at-sign", "", "a@b@c", "ünï@exämple.de", None]
    assert mask_email(pa.array(values)).to_pylist() == [
        "j***@example.com",
        "J***@x.org",
        "***",
        "***",
        "***",
        "ü***@exämple.de",
        None,
    ]


def test_phone_keeps_format_and_last_digits() -> None:
    values = ["+44 (20) 7946-0958", "555-1234", "1234", "12", "", "call me", None]
    assert mask_phone(pa.array(values), 4).to_pylist() == [
        "+** (**) ****-0958",
        "***-1234",
        "****",  # no more digits than kept: nothing revealed
        "**",
        "",
        "call me",
        None,
    ]
    assert mask_phone(pa.array(["+1 212 555 0100"]), 0).to_pylist() == ["+* *** *** ****"]
    assert masked({"strategy": "phone", "keep_last": 2}, [4420794609], pa.int64()) == ["********09"]


def test_hash_is_hmac_sha256_hex_and_deterministic() -> None:
    out = masked("hash", ["a", "a", "b", "", None])
    assert out[0] == out[1] != out[2]
    assert all(len(value) == 64 and int(value, 16) >= 0 for value in out[:4])
    assert out[4] is None
    assert masked("hash", ["a"], secret=b"another-secret-of-32-characters!")[0] != out[0]


def test_tokenize_is_deterministic_across_tables_and_runs() -> None:
    first = masked("tokenize", ["alice", "bob", "alice", None])
    again = masked("pseudonym", ["alice"])
    assert first[0] == first[2] == again[0] != first[1]
    assert first[0].startswith("tok_") and len(first[0]) == 4 + 32
    assert first[3] is None
    other_secret = masked("tokenize", ["alice"], secret=b"another-secret-of-32-characters!")
    assert other_secret[0] != first[0]
    assert masked({"strategy": "tokenize", "prefix": "cust_"}, ["alice"])[0].startswith("cust_")


def test_hash_and_tokenize_use_separate_keys() -> None:
    digest = masked("hash", ["alice"])[0]
    token = masked({"strategy": "tokenize", "prefix": ""}, ["alice"])[0]
    assert not digest.startswith(token[:8].lower())


def test_tokenize_non_text_columns_by_their_text() -> None:
    assert masked("tokenize", [42], pa.int64()) == masked("tokenize", ["42"])


def test_keyed_strategies_need_a_real_secret() -> None:
    step = MaskStep.model_validate({"columns": {"c": "hash"}, "secret_conn_id": "mask_secret"})
    with pytest.raises(KeyringError, match="'mask_secret' is missing or shorter than 16 bytes"):
        Masker(step, None)
    with pytest.raises(KeyringError):
        Masker(step, b"short")


def test_output_schema_and_metadata() -> None:
    step = MaskStep.model_validate(
        {"columns": {"id": "tokenize", "n": "null", "e": "email"}, "secret_conn_id": "s"}
    )
    masker = Masker(step, SECRET)
    batch = pa.record_batch(
        {"id": pa.array([1], pa.int64()), "n": pa.array([1.0]), "e": ["a@b.co"], "keep": [True]}
    )
    out = masker.mask(batch)
    assert masker.output_schema(batch.schema) == out.schema
    assert out.schema.field("id").type == pa.string()
    assert masker.metadata() == {
        "rows_in": 1,
        "rows_out": 1,
        "columns_masked": {"id": "tokenize", "n": "null", "e": "email"},
    }


def test_missing_column_is_named() -> None:
    step = MaskStep.model_validate({"columns": {"email": "email"}})
    with pytest.raises(IncompatibleSchemaError, match=r"\['email'\]"):
        Masker(step).mask(pa.record_batch({"mail": ["a@b.co"]}))


def test_letter_masking_mixes_fast_ascii_and_unicode_paths_on_sliced_arrays() -> None:
    values = pa.array(["skip", "abc-123", "Zoë 9", None, "日本 x", "ok"]).slice(1, 4)
    assert mask_letters_digits(values).to_pylist() == ["***-***", "*** *", None, "** *"]
    assert mask_letters_digits(values, "•").to_pylist() == ["•••-•••", "••• •", None, "•• •"]
    assert mask_partial(values, 1, 1).to_pylist() == ["a**-**3", "Z** 9", None, "日* x"]
    assert mask_phone(pa.array(["x", "+1 (555) 010-9999"]).slice(1), 2).to_pylist() == ["+* (***) ***-**99"]
