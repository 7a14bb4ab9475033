"""What ``airflow-sync init`` proposes for a table, from its column profile and catalog facts.

Pure: the profile is plain data (built by ``pipeline/profile.py``), and every suggestion carries the reason
it was derived from (a catalog fact, a statistic, or a share of the sample), so nothing is guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_sync.core.normalize import EMAIL_PATTERN

MONOTONIC_SHARE = 0.99
"""Share of adjacent sample pairs (in key order) that must not decrease for a column to count as monotonic."""
MONOTONIC_CORRELATION = 0.95
"""pg_stats.correlation (physical order vs value) from which a column counts as monotonic."""
PATTERN_SHARE = 0.8
"""Share of the sampled non-null values that must match a value pattern for the column to be flagged."""
LOW_CARDINALITY = 10
"""A text column with at most this many distinct values in a big enough sample gets an ``in`` rule."""

# Value patterns on the sample. Phone: an optional +, then 7-15 digits with usual separators.
_VALUE_PATTERNS = {
    "email": re.compile(EMAIL_PATTERN),
    "phone": re.compile(r"^\+?[0-9][0-9 ().\-/]{5,20}[0-9]$"),
    "iban": re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$"),
}
_DIGITS = re.compile(r"[0-9]")

# Name patterns: (what it is, regex on the lower-cased column name).
_NAME_PATTERNS = (
    ("email", re.compile(r"(^|_)e?_?mail(_address)?($|_)")),
    ("phone", re.compile(r"(^|_)(phone|mobile|cell|tel|telephone|fax|msisdn)($|_)")),
    ("person name", re.compile(r"(^|_)((first|last|middle|given|family|full|maiden|sur)_?name|surname)$")),
    (
        "national id",
        re.compile(r"(^|_)(ssn|national_id|nin|passport(_no|_number)?|tax_id|tin|social_security)"),
    ),
    ("account number", re.compile(r"(^|_)(iban|card_number|credit_card|cc_number|account_number|pan)($|_)")),
)
_UPDATE_NAMES = re.compile(r"(updat|modif|chang|last_seen|touched|synced|version)")


@dataclass(frozen=True)
class ColumnProfile:
    """One column: what the catalog declares and what a sample of the table showed."""

    name: str
    db_type: str
    kind: str
    """integer | float | decimal | text | timestamp | date | boolean | binary | other"""
    declared_not_null: bool
    sampled: int
    nulls: int
    distinct: int
    """Distinct non-null values in the sample."""
    distinct_estimate: float | None = None
    distinct_source: str = "sample"
    catalog_null_frac: float | None = None
    catalog_most_common: tuple[str, ...] = ()
    """The planner's most common values (pg_stats.most_common_vals), where the database keeps them."""
    minimum: Any = None
    maximum: Any = None
    top_values: list[tuple[str, int]] = field(default_factory=list)
    min_length: int | None = None
    max_length: int | None = None
    pattern_shares: dict[str, float] = field(default_factory=dict)
    key_order_share: float | None = None
    """Share of adjacent sample pairs, in primary-key order, whose value does not decrease."""
    key_order_pairs: int = 0
    correlation: float | None = None
    generated: str | None = None
    indexes: tuple[str, ...] = ()
    """Indexes whose first column this is (the primary key's counts)."""

    @property
    def null_ratio(self) -> float:
        return self.nulls / self.sampled if self.sampled else 0.0


@dataclass(frozen=True)
class TableProfile:
    table: str
    dialect: str
    estimated_rows: int | None
    sample_rows: int
    sample_method: str
    primary_key: list[str]
    unique_keys: list[list[str]]
    columns: list[ColumnProfile]

    def column(self, name: str) -> ColumnProfile:
        return next(column for column in self.columns if column.name == name)


@dataclass(frozen=True)
class Suggested:
    """One proposal and what it was derived from."""

    column: str
    value: Any
    reason: str


@dataclass
class Suggestions:
    keys: list[str]
    keys_reason: str
    cursor: Suggested | None
    """``value`` is the strategy (timestamp | sequence)."""
    cursor_rejected: list[str]
    masks: list[Suggested]
    encrypts: list[Suggested]
    rules: list[Suggested]
    """``value`` is a dict of validate rules for the column."""


def value_pattern_shares(values: Iterable[Any]) -> dict[str, float]:
    """Share of the non-null text values matching each value pattern (email, phone, iban)."""
    texts = [str(value).strip() for value in values if isinstance(value, str) and value.strip()]
    if not texts:
        return {}
    shares = {}
    for name, pattern in _VALUE_PATTERNS.items():
        if name == "phone":
            hits = sum(1 for t in texts if pattern.match(t) and 7 <= len(_DIGITS.findall(t)) <= 15)
        else:
            hits = sum(1 for t in texts if pattern.match(t.replace(" ", "") if name == "iban" else t))
        shares[name] = hits / len(texts)
    return shares


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def _keys(profile: TableProfile) -> tuple[list[str], str]:
    if profile.primary_key:
        return list(profile.primary_key), f"primary key of {profile.table} (catalog)"
    for key in profile.unique_keys:
        if key and all(profile.column(name).declared_not_null for name in key):
            return list(key), f"unique constraint/index on NOT NULL column(s) of {profile.table} (catalog)"
    return [], f"{profile.table} has no primary key or unique NOT NULL key (catalog)"


def _monotonic_evidence(column: ColumnProfile, order_by: list[str]) -> tuple[bool, str]:
    """Whether the column grows with the rows, and the sentence saying what was measured."""
    measured = []
    ok = False
    if column.generated:
        measured.append(f"filled from a sequence ({column.generated})")
        ok = True
    if column.correlation is not None:
        measured.append(f"pg_stats.correlation {column.correlation:.3f} (physical order vs value, ANALYZE)")
        ok = ok or column.correlation >= MONOTONIC_CORRELATION
    if column.key_order_share is not None and column.key_order_pairs:
        measured.append(
            f"{_percent(column.key_order_share)} of {column.key_order_pairs} adjacent sample pairs in "
            f"{', '.join(order_by)} order do not decrease"
        )
        ok = ok or column.key_order_share >= MONOTONIC_SHARE
    if not measured:
        return False, "monotonicity not measurable (no sequence, statistics or key order to compare with)"
    return ok, "; ".join(measured)


def _cursor(profile: TableProfile, keys: list[str]) -> tuple[Suggested | None, list[str]]:
    scored: list[tuple[tuple[int, ...], Suggested]] = []
    rejected = []
    for column in profile.columns:
        strategy = {"timestamp": "timestamp", "date": "timestamp", "integer": "sequence"}.get(column.kind)
        if strategy is None:
            continue
        problems = []
        if not column.indexes:
            problems.append("not the first column of any index")
        if column.declared_not_null:
            null_note = "declared NOT NULL"
        elif column.nulls == 0 and column.sampled:
            null_note = f"NULL allowed but none in {column.sampled} sampled rows"
        else:
            null_note = ""
            problems.append(f"{_percent(column.null_ratio)} NULL in the sample")
        monotonic, evidence = _monotonic_evidence(column, keys)
        if not monotonic:
            problems.append(f"not shown monotonic: {evidence}")
        if problems:
            if not monotonic and len(problems) == 1 and _UPDATE_NAMES.search(column.name.lower()):
                # Updates move rows out of key order; the snapshot cannot tell whether every write sets it.
                problems.append("if every write sets it, it is still a valid cursor: check, then use it")
            rejected.append(f"{column.name}: {'; '.join(problems)}")
            continue
        where = f"indexed ({', '.join(column.indexes)})"
        reason = f"{column.kind} column, {where}, {null_note}; {evidence}"
        if strategy == "sequence":
            reason += "; a sequence finds new rows only, not updated ones"
        rank = (
            int(strategy == "timestamp"),
            int(bool(_UPDATE_NAMES.search(column.name.lower()))),
            int(column.declared_not_null),
        )
        scored.append((rank, Suggested(column.name, strategy, reason)))
    if not scored:
        return None, rejected
    scored.sort(key=lambda item: item[0], reverse=True)
    best = scored[0][1]
    others = [f"{s.column}: also qualifies as {s.value} cursor ({s.reason})" for _r, s in scored[1:]]
    return best, rejected + others


def _pii(column: ColumnProfile) -> tuple[str, str] | None:
    """(what it looks like, why) for a column that looks personal, else None. The values' evidence wins
    over the name's when both speak, since it is what the column holds."""
    lowered = column.name.lower()
    by_name = next(((what, p) for what, p in _NAME_PATTERNS if p.search(lowered)), None)
    reasons, what = [], None
    if by_name is not None:
        what = by_name[0]
        reasons.append(f"name {column.name!r} matches the name pattern for {what}")
    for name, share in sorted(column.pattern_shares.items(), key=lambda item: -item[1]):
        if share >= PATTERN_SHARE:
            what = {"iban": "account number"}.get(name, name)
            sampled = column.sampled - column.nulls
            reasons.append(f"{_percent(share)} of {sampled} sampled non-null values match the {name} pattern")
            break
    return None if what is None else (what, "; ".join(reasons))


_MASKS: dict[str, Any] = {
    "email": "email",
    "phone": {"strategy": "phone", "keep_last": 4},
    "person name": {"strategy": "partial", "keep_first": 1, "keep_last": 0},
    "account number": {"strategy": "partial", "keep_first": 0, "keep_last": 4},
}


def _protection(profile: TableProfile, keys: list[str]) -> tuple[list[Suggested], list[Suggested]]:
    masks, encrypts = [], []
    for column in profile.columns:
        found = _pii(column)
        if found is None:
            continue
        what, reason = found
        if column.name in keys:
            # A masked key breaks upserts; encrypting it deterministically keeps it unique and joinable.
            encrypts.append(Suggested(column.name, "deterministic", f"{reason}; it is a key column"))
        elif what == "national id":
            encrypts.append(Suggested(column.name, "deterministic", f"{reason}; kept joinable"))
        else:
            masks.append(Suggested(column.name, _MASKS[what], reason))
    return masks, encrypts


def _rules(profile: TableProfile, pii: set[str], keys: list[str]) -> list[Suggested]:
    rules = []
    for column in profile.columns:
        if not column.sampled or column.name in keys:
            continue
        rule: dict[str, Any] = {}
        reasons = []
        if not column.declared_not_null and column.nulls == 0:
            rule["not_null"] = True
            reasons.append(f"0 of {column.sampled} sampled rows NULL (NULL allowed by the catalog)")
        numeric = column.kind in ("integer", "float", "decimal") and _is_number(column.minimum)
        if numeric and float(column.minimum) >= 0:
            rule["min"] = 0
            shown = "" if column.name in pii else f" {column.minimum}"  # personal values are never written
            reasons.append(f"sample minimum{shown} is not negative")
        shares = column.pattern_shares
        if shares.get("email", 0) >= PATTERN_SHARE:
            rule["email"] = True
            reasons.append(f"{_percent(shares['email'])} of sampled values are e-mail addresses")
        if _low_cardinality(column) and column.name not in pii:
            sampled_values = {value for value, _count in column.top_values}
            rule["in"] = sorted(sampled_values | set(column.catalog_most_common))
            rule["on_invalid"] = "warn"  # a sample can miss a rare value: warn, never drop
            reasons.append(
                f"{column.distinct} distinct values in {column.sampled} sampled rows "
                f"(distinct estimate {_estimate(column)} from {column.distinct_source})"
            )
            extra = len(set(column.catalog_most_common) - sampled_values)
            if extra:
                reasons.append(f"{extra} more from pg_stats.most_common_vals")
        if rule:
            rules.append(Suggested(column.name, rule, "; ".join(reasons)))
    return rules


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)


def _estimate(column: ColumnProfile) -> str:
    return "-" if column.distinct_estimate is None else f"{column.distinct_estimate:g}"


def _low_cardinality(column: ColumnProfile) -> bool:
    if column.kind != "text" or column.sampled < 100 or not 0 < column.distinct <= LOW_CARDINALITY:
        return False
    if len(column.top_values) != column.distinct:
        return False
    # The catalog's estimate, when there is one, must agree that the set is small.
    return column.distinct_estimate is None or 0 < column.distinct_estimate <= LOW_CARDINALITY


def suggest(profile: TableProfile) -> Suggestions:
    """Keys, cursor, masking/encryption and validation rules for ``profile``, each with its reason."""
    keys, keys_reason = _keys(profile)
    cursor, rejected = _cursor(profile, keys)
    masks, encrypts = _protection(profile, keys)
    pii = {s.column for s in masks} | {s.column for s in encrypts}
    return Suggestions(keys, keys_reason, cursor, rejected, masks, encrypts, _rules(profile, pii, keys))


def pii_columns(profile: TableProfile) -> dict[str, str]:
    """Columns that look personal and why: their values are never printed."""
    return {column.name: found[1] for column in profile.columns if (found := _pii(column))}
