"""Column masking over Arrow batches (the ``mask`` step).

Usage by an operator::

    masker = Masker(step, secret=connection.password.encode())   # secret only for hash/tokenize
    masked = masker.mask(batch)
    metadata = masker.metadata()                                 # strategy per column, no values

NULL stays NULL under every strategy. Text strategies (partial, email, phone) run as pyarrow.compute
kernels; hash and tokenize run HMAC-SHA-256 in a tight loop. Both keyed strategies use sub-keys derived
from the secret, so a hash never equals a token of the same value.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_sync.core.convert import is_text
from airflow_provider_sync.core.normalize import as_text
from airflow_provider_sync.core.vocabulary import SECRET_STRATEGIES
from airflow_provider_sync.errors import IncompatibleSchemaError, KeyringError

if TYPE_CHECKING:
    from airflow_provider_sync.config.steps.mask import MaskRule, MaskStep

REDACTED = "[REDACTED]"
MIN_SECRET_BYTES = 16
_LETTER_OR_DIGIT = r"[\pL\pN]"
_NO_STOP = 2**31 - 1
_TEXT_OUTPUT = frozenset({"partial", "email", "phone", "hash", "tokenize", "pseudonym"})


def _derive(secret: bytes, purpose: str) -> bytes:
    return hmac.digest(secret, f"airflow-provider-sync/mask/{purpose}".encode(), "sha256")


def _regex_replacement(char: str) -> str:
    return "\\\\" if char == "\\" else char


_ASCII_LETTERS_DIGITS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _translate_buffer(text: pa.Array, table: bytes) -> pa.Array:
    """Map bytes of a string array through ``table`` in one call over its data buffer.

    Only ASCII bytes may be mapped, and only to ASCII bytes: UTF-8 multi-byte sequences never contain
    ASCII bytes, so offsets and validity stay correct.
    """
    validity, offsets, data = text.buffers()
    if data is None:
        return text
    mapped = pa.py_buffer(data.to_pybytes().translate(table))
    return pa.Array.from_buffers(
        pa.string(), len(text), [validity, offsets, mapped], text.null_count, text.offset
    )


def mask_letters_digits(text: pa.Array, mask_char: str = "*") -> pa.Array:
    """Replace every letter and digit with ``mask_char``; everything else stays.

    ASCII text is translated byte-wise over the whole buffer; values holding other characters (é, 日)
    go through the Unicode-aware regex, which is slower.
    """
    if len(mask_char.encode()) != 1:
        return pc.replace_substring_regex(
            text, pattern=_LETTER_OR_DIGIT, replacement=_regex_replacement(mask_char)
        )
    table = bytes.maketrans(_ASCII_LETTERS_DIGITS, mask_char.encode() * len(_ASCII_LETTERS_DIGITS))
    translated = _translate_buffer(text, table)
    non_ascii = pc.fill_null(pc.invert(pc.string_is_ascii(text)), False)
    if not pc.any(non_ascii).as_py():
        return translated
    slow = pc.replace_substring_regex(
        text.filter(non_ascii), pattern=_LETTER_OR_DIGIT, replacement=_regex_replacement(mask_char)
    )
    return pc.replace_with_mask(translated, non_ascii, slow)


_DIGITS_TO_STAR = bytes.maketrans(b"0123456789", b"*" * 10)


def mask_partial(values: pa.Array, keep_first: int, keep_last: int, mask_char: str = "*") -> pa.Array:
    """Keep ``keep_first``/``keep_last`` characters, mask every other letter or digit.

    A value no longer than ``keep_first + keep_last`` is masked entirely, so a short value is never
    shown in full.
    """
    text = as_text(values)
    masked_all = mask_letters_digits(text, mask_char)
    if keep_first == 0 and keep_last == 0:
        return masked_all
    head = pc.utf8_slice_codeunits(text, 0, keep_first)
    middle = pc.utf8_slice_codeunits(text, keep_first, -keep_last if keep_last else _NO_STOP)
    tail = pc.utf8_slice_codeunits(text, -keep_last, _NO_STOP) if keep_last else pa.scalar("")
    middle = mask_letters_digits(middle, mask_char)
    joined = pc.binary_join_element_wise(head, middle, tail, "")
    return pc.if_else(pc.greater(pc.utf8_length(text), keep_first + keep_last), joined, masked_all)


def mask_email(values: pa.Array) -> pa.Array:
    """``john.doe@example.com`` → ``j***@example.com``; text that is not an address becomes ``***``."""
    text = as_text(values)
    shaped = pc.match_substring_regex(text, pattern=r"^[^@\s]+@[^@\s]+$")
    masked = pc.replace_substring_regex(text, pattern=r"^(.)[^@]*@", replacement=r"\1***@")
    return pc.if_else(
        shaped, masked, pc.if_else(pc.is_valid(text), pa.scalar("***"), pa.scalar(None, pa.string()))
    )


def mask_phone(values: pa.Array, keep_last: int) -> pa.Array:
    """Mask every digit but the last ``keep_last``; ``+``, spaces and separators keep their places.

    A value with no more than ``keep_last`` digits has all its digits masked.
    """
    text = as_text(values)
    masked_all = _translate_buffer(text, _DIGITS_TO_STAR)
    if keep_last == 0:
        return masked_all
    # RE2 has no look-ahead, so work on the reversed text: keep the first N digits, mask the rest.
    reversed_text = pc.utf8_reverse(text)
    parts = pc.extract_regex(
        reversed_text, pattern=rf"(?s)^(?P<keep>(?:[^0-9]*[0-9]){{{keep_last}}})(?P<rest>.*)$"
    )
    kept = pc.struct_field(parts, "keep")
    rest = _translate_buffer(pc.struct_field(parts, "rest"), _DIGITS_TO_STAR)
    partial = pc.utf8_reverse(pc.binary_join_element_wise(kept, rest, ""))
    digit_count = pc.utf8_length(pc.replace_substring_regex(text, pattern=r"[^0-9]", replacement=""))
    return pc.if_else(pc.greater(digit_count, keep_last), partial, masked_all)


def _hmac_sha256_all(values: pa.Array, key: bytes) -> list[bytes | None]:
    """HMAC-SHA-256 (RFC 2104) of each value's UTF-8 bytes.

    The keyed inner and outer hash states are prepared once and copied per value, which is several
    times faster than ``hmac.digest`` setting the key up again for every value.
    """
    block = key.ljust(64, b"\0") if len(key) <= 64 else hashlib.sha256(key).digest().ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    inner_copy, outer_copy = inner.copy, outer.copy
    out: list[bytes | None] = []
    append = out.append
    for value in as_text(values).cast(pa.binary()).to_pylist():
        if value is None:
            append(None)
            continue
        state = inner_copy()
        state.update(value)
        final = outer_copy()
        final.update(state.digest())
        append(final.digest())
    return out


def hmac_hex(values: pa.Array, key: bytes) -> pa.Array:
    """HMAC-SHA-256 of each value's UTF-8 text, as lower-case hex."""
    out = [None if digest is None else digest.hex() for digest in _hmac_sha256_all(values, key)]
    return pa.array(out, pa.string())


def tokenize(values: pa.Array, key: bytes, prefix: str = "tok_") -> pa.Array:
    """``<prefix>`` + 32 lower-case hex characters (128 bits of HMAC-SHA-256).

    Lower case only, so tokens stay distinct under case-insensitive collations (MySQL's defaults).
    """
    out = [None if digest is None else prefix + digest[:16].hex() for digest in _hmac_sha256_all(values, key)]
    return pa.array(out, pa.string())


class Masker:
    """Applies a :class:`MaskStep` to batches. ``secret`` is the raw secret for hash/tokenize."""

    def __init__(self, step: MaskStep, secret: bytes | None = None) -> None:
        self.step = step
        needs_secret = any(rule.strategy in SECRET_STRATEGIES for rule in step.columns.values())
        if needs_secret and (secret is None or len(secret) < MIN_SECRET_BYTES):
            raise KeyringError(
                f"the mask secret from connection {step.secret_conn_id!r} is missing or shorter than "
                f"{MIN_SECRET_BYTES} bytes; put at least 32 random characters in that connection's password"
            )
        self._hash_key = _derive(secret, "hash") if needs_secret and secret else b""
        self._token_key = _derive(secret, "tokenize") if needs_secret and secret else b""
        self.rows = 0

    def mask(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch with every configured column masked; other columns untouched, order kept."""
        names = batch.schema.names
        missing = sorted(set(self.step.columns) - set(names))
        if missing:
            raise IncompatibleSchemaError(
                f"mask names column(s) {missing} that are not in the data; available columns: {names}"
            )
        arrays = []
        fields = []
        self.rows += batch.num_rows
        for index, name in enumerate(names):
            values = batch.column(index)
            rule = self.step.columns.get(name)
            if rule is not None:
                values = self.mask_array(name, values, rule)
            arrays.append(values)
            fields.append(batch.schema.field(index).with_type(values.type))
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields, metadata=batch.schema.metadata))

    def mask_array(self, column: str, values: pa.Array, rule: MaskRule) -> pa.Array:
        strategy = rule.strategy
        if strategy == "null":
            return pa.nulls(len(values), values.type)
        if strategy == "redact":
            if not is_text(values.type):
                raise IncompatibleSchemaError(
                    f"mask strategy redact on column {column!r} needs a text column, not {values.type}; "
                    "use null or replace for other types"
                )
            return pc.if_else(pc.is_valid(values), pa.scalar(REDACTED, values.type), values)
        if rule.strategy == "replace":
            try:
                value = pa.scalar(rule.value).cast(values.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                raise IncompatibleSchemaError(
                    f"mask strategy replace on column {column!r}: the replacement value does not fit the "
                    f"column type {values.type}"
                ) from None
            return pc.if_else(pc.is_valid(values), value, pa.scalar(None, values.type))
        if rule.strategy == "partial":
            return mask_partial(values, rule.keep_first, rule.keep_last, rule.mask_char)
        if strategy == "email":
            return mask_email(values)
        if rule.strategy == "phone":
            return mask_phone(values, rule.keep_last)
        if strategy == "hash":
            return hmac_hex(values, self._hash_key)
        assert rule.strategy in ("tokenize", "pseudonym")
        return tokenize(values, self._token_key, rule.prefix)

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """The schema of masked batches: text strategies turn their columns into strings, and rewritten
        columns lose the source's declared type (a hash does not fit ``varchar(10)``, a redacted document
        is no JSON); only ``null`` keeps it."""
        from airflow_provider_sync.core.declared import with_declared

        fields = []
        for field in schema:
            rule = self.step.columns.get(field.name)
            if rule is not None and rule.strategy in _TEXT_OUTPUT:
                field = field.with_type(pa.string())
            rewritten = rule is not None and rule.strategy != "null"
            fields.append(with_declared(field, None) if rewritten else field)
        return pa.schema(fields, metadata=schema.metadata)

    def metadata(self) -> dict[str, Any]:
        """Rows seen and which columns were masked how (for the manifest; no values, no secret)."""
        return {
            "rows_in": self.rows,
            "rows_out": self.rows,
            "columns_masked": {name: rule.strategy for name, rule in self.step.columns.items()},
        }
