"""Vectorised text normalisers and format checks shared by validation, masking and schema mapping."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

# HTML5-style address check with a dotted domain; RE2 syntax so pyarrow can run it.
EMAIL_PATTERN = (
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
_PHONE_SEPARATORS = r"[\s().\-/]"


def as_text(values: pa.Array) -> pa.Array:
    """The values as a (non-chunked) string array; other types are cast to their text form."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_large_string(values.type):
        return values.cast(pa.string())
    if pa.types.is_string(values.type):
        return values
    return pc.cast(values, pa.string())


def is_email(values: pa.Array) -> pa.Array:
    """True where the (trimmed) text looks like an e-mail address; NULL stays NULL."""
    import pyarrow.compute as pc

    return pc.match_substring_regex(pc.utf8_trim_whitespace(as_text(values)), pattern=EMAIL_PATTERN)


def normalize_email(values: pa.Array) -> pa.Array:
    """Trim and lower-case addresses (domains are case-insensitive; most providers ignore local case)."""
    import pyarrow.compute as pc

    return pc.utf8_lower(pc.utf8_trim_whitespace(as_text(values)))


def normalize_phone(values: pa.Array, default_country_code: str | None = None) -> pa.Array:
    """Phone numbers in E.164 (``+4420...``), or NULL where the text cannot be one.

    Spaces, dots, dashes, slashes and parentheses are removed and a leading ``00`` becomes ``+``. A number
    without an international prefix gets ``+<default_country_code>`` after dropping one national trunk
    ``0``; without a default country code it is not a valid E.164 number.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.replace_substring_regex(as_text(values), pattern=_PHONE_SEPARATORS, replacement="")
    text = pc.replace_substring_regex(text, pattern=r"^00", replacement="+")
    if default_country_code:
        national = pc.replace_substring_regex(text, pattern=r"^0", replacement="")
        text = pc.if_else(
            pc.starts_with(text, "+"),
            text,
            pc.binary_join_element_wise(f"+{default_country_code}", national, ""),
        )
    valid = pc.match_substring_regex(text, pattern=E164_PATTERN)
    return pc.if_else(valid, text, pa.scalar(None, pa.string()))
