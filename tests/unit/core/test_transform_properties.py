"""Property tests: round trips, determinism, and that masking never reveals more than configured."""

from __future__ import annotations

import base64
import json
import os
import re
import unicodedata

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_sync.config.steps.mask import MaskStep
from airflow_provider_sync.core.encrypt import decrypt_array, encrypt_array
from airflow_provider_sync.core.keyring import Keyring
from airflow_provider_sync.core.mask import Masker, mask_email, mask_partial, mask_phone

KEY_IDS = ("k1", "k2", "k3")
KEYS = {key_id: base64.b64encode(os.urandom(32 if key_id != "k3" else 64)).decode() for key_id in KEY_IDS}
RINGS = {key_id: Keyring.from_json(json.dumps({"primary": key_id, "keys": KEYS})) for key_id in KEY_IDS}
OTHER_RING = Keyring.from_json(
    json.dumps({"primary": "k1", "keys": {"k1": base64.b64encode(os.urandom(32)).decode()}})
)

texts = st.lists(st.one_of(st.none(), st.text(max_size=200)), min_size=1, max_size=20)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(values=texts, mode=st.sampled_from(["randomized", "deterministic"]))
def test_decrypt_of_encrypt_is_identity_for_every_key_in_the_ring(
    values: list[str | None], mode: str
) -> None:
    array = pa.array(values, pa.string())
    reader = RINGS["k1"]  # any ring holding every key decrypts values written under any of them
    for key_id, ring in RINGS.items():
        encrypted = encrypt_array(array, ring, "orders.email", mode)  # type: ignore[arg-type]
        assert all(f":{key_id}:" in v for v in encrypted.to_pylist() if v is not None)
        assert decrypt_array(encrypted, reader, "orders.email").to_pylist() == values


@SETTINGS
@given(values=st.lists(st.one_of(st.none(), st.binary(max_size=100)), min_size=1, max_size=10))
def test_binary_round_trip(values: list[bytes | None]) -> None:
    encrypted = encrypt_array(pa.array(values, pa.binary()), RINGS["k2"], "t.c", "deterministic")
    assert decrypt_array(encrypted, RINGS["k3"], "t.c", as_binary=True).to_pylist() == values


@SETTINGS
@given(value=st.text(max_size=100), other=st.text(max_size=100))
def test_deterministic_encryption_is_equal_for_equal_inputs_and_differs_across_keys(
    value: str, other: str
) -> None:
    first, second, different = encrypt_array(
        pa.array([value, value, other]), RINGS["k1"], "t.c", "deterministic"
    ).to_pylist()
    assert first == second
    assert (first == different) == (value == other)
    assert encrypt_array(pa.array([value]), OTHER_RING, "t.c", "deterministic")[0].as_py() != first
    assert encrypt_array(pa.array([value]), RINGS["k1"], "t.other", "deterministic")[0].as_py() != first


def _masker(strategy: str, secret: bytes) -> Masker:
    return Masker(MaskStep.model_validate({"columns": {"c": strategy}, "secret_conn_id": "s"}), secret)


SECRET_A = b"secret-a-" + b"a" * 30
SECRET_B = b"secret-b-" + b"b" * 30


@SETTINGS
@given(value=st.text(max_size=80), other=st.text(max_size=80), strategy=st.sampled_from(["hash", "tokenize"]))
def test_keyed_masks_are_deterministic_and_differ_across_secrets(
    value: str, other: str, strategy: str
) -> None:
    batch = pa.record_batch({"c": [value, value, other]})
    first, second, different = _masker(strategy, SECRET_A).mask(batch).column("c").to_pylist()
    assert first == second
    assert (first == different) == (value == other)
    assert _masker(strategy, SECRET_B).mask(batch).column("c")[0].as_py() != first
    assert len(value) < 8 or value not in first


def _letter_or_digit(char: str) -> bool:
    return unicodedata.category(char)[0] in "LN"


plain_text = st.text(
    alphabet=st.characters(categories=("Lu", "Ll", "Nd", "Zs", "Pd", "Po"), max_codepoint=0x2FFF), max_size=60
)


@SETTINGS
@given(value=plain_text, first=st.integers(0, 6), last=st.integers(0, 6))
def test_partial_reveals_at_most_the_configured_characters(value: str, first: int, last: int) -> None:
    [out] = mask_partial(pa.array([value]), first, last, "*").to_pylist()
    assert len(out) == len(value)
    revealed = [i for i, (a, b) in enumerate(zip(value, out, strict=True)) if a == b and _letter_or_digit(a)]
    if len(value) <= first + last:
        assert revealed == []
    else:
        allowed = set(range(first)) | set(range(len(value) - last, len(value)))
        assert set(revealed) <= allowed
    for a, b in zip(value, out, strict=True):
        assert b == a or (b == "*" and _letter_or_digit(a))  # separators stay, only letters/digits change


@SETTINGS
@given(value=st.text(max_size=60), keep=st.integers(0, 6))
def test_phone_mask_reveals_at_most_the_last_digits(value: str, keep: int) -> None:
    [out] = mask_phone(pa.array([value]), keep).to_pylist()
    digits_in = re.findall(r"[0-9]", value)
    digits_out = re.findall(r"[0-9]", out)
    assert len(out) == len(value)
    if len(digits_in) <= keep:
        assert digits_out == []
    else:
        assert digits_out == digits_in[len(digits_in) - keep :]


@SETTINGS
@given(local=st.text(min_size=1, max_size=30), domain=st.text(min_size=1, max_size=30))
def test_email_mask_keeps_only_first_character_and_domain(local: str, domain: str) -> None:
    value = f"{local}@{domain}"
    [out] = mask_email(pa.array([value])).to_pylist()
    if "@" in local or "@" in domain or any(c in "\t\n\f\r " for c in value):  # RE2's whitespace class
        assert out == "***"
    else:
        assert out == f"{local[0]}***@{domain}"
