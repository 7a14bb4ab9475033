"""The ``subset`` section of a pipeline file: a referentially complete sample of its tables as test data.

Example::

    subset:
      root: customers
      where: "country = 'DE'"
      sample: 5%                     # or a row count such as 200
      follow:
        - orders.customer_id -> customers.id
        - order_items.order_id -> orders.id

``airflow-sync subset --pipeline P`` keeps the ``root`` rows matching ``where`` (then a deterministic
``sample`` of them), follows each edge from parent to child (the orders of kept customers, the items of
kept orders) and, for completeness, from child to parent (the parents of every kept row), until nothing
changes. The kept rows go through each table's mask and encrypt steps into the tables' targets, whose
contents they replace.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_validator

from airflow_provider_sync.config.base import StrictModel
from airflow_provider_sync.config.checks import check_single_select
from airflow_provider_sync.dialects.where_check import where_check_sql

DEFAULT_MAX_KEYS = 1_000_000
_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_EDGE = re.compile(rf"^\s*({_NAME})\.({_NAME})\s*->\s*({_NAME})\.({_NAME})\s*$")
_QUERY = "'query'"  # how check_single_select names what it checks
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class FollowEdge:
    """``child.child_column -> parent.parent_column``: a foreign key the subset keeps whole."""

    child: str
    child_column: str
    parent: str
    parent_column: str

    def __str__(self) -> str:
        return f"{self.child}.{self.child_column} -> {self.parent}.{self.parent_column}"


def parse_edge(text: str) -> FollowEdge:
    """``"orders.customer_id -> customers.id"`` as a :class:`FollowEdge`; ``ValueError`` otherwise."""
    match = _EDGE.match(text)
    if match is None:
        raise ValueError(
            f"follow edge {text!r} must read 'child_table.column -> parent_table.column', "
            "e.g. 'orders.customer_id -> customers.id'"
        )
    return FollowEdge(*match.groups())


def _check_edge(value: str) -> str:
    parse_edge(value)
    return value


def _check_where(value: str) -> str:
    try:
        check_single_select(where_check_sql(value))
    except ValueError as error:
        raise ValueError(
            f"'where' must be one boolean SQL expression such as \"country = 'DE'\" (no ';', no trailing "
            f"-- comment): {str(error).replace(_QUERY, 'it')}"
        ) from None
    if not value.strip():
        raise ValueError("'where' is empty; give a condition such as \"country = 'DE'\" or remove the key")
    return value


def _check_sample(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("'sample' is a percentage such as '5%' or a row count such as 200, not a boolean")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"'sample' row count must be at least 1, got {value}")
        return value
    match = _PERCENT.match(str(value))
    if match is None:
        raise ValueError(
            f"'sample' must be a percentage such as '5%' or a row count such as 200, got {value!r}"
        )
    percent = float(match.group(1))
    if not 0 < percent <= 100:
        raise ValueError(f"'sample' percentage must lie above 0% and at most 100%, got {value!r}")
    return str(value).strip()


class SubsetConfig(StrictModel):
    """A referentially complete subset of the file's tables (test data from production)."""

    root: str = Field(description="The table the subset starts from (one of the file's `tables`).")
    where: Annotated[str, AfterValidator(_check_where)] | None = Field(
        None, description="One boolean SQL expression over the root table's columns, e.g. \"country = 'DE'\"."
    )
    sample: Annotated[str | int, AfterValidator(_check_sample)] | None = Field(
        None,
        description="Keep this share ('5%') or number (200) of the matching root rows, chosen "
        "deterministically by a keyed hash of their key (same rows on every run with the same seed).",
    )
    seed: int = Field(0, description="Changes which rows a sample picks.")
    follow: list[Annotated[str, AfterValidator(_check_edge)]] = Field(
        default_factory=list,
        description="Foreign keys to keep whole, as 'child.column -> parent.column'.",
    )
    max_keys: int = Field(
        DEFAULT_MAX_KEYS,
        ge=1,
        description="Most rows the subset may hold over all tables (their keys are kept in memory).",
    )

    @field_validator("follow")
    @classmethod
    def _no_duplicate_edges(cls, value: list[str]) -> list[str]:
        edges = [parse_edge(text) for text in value]
        if len(set(edges)) != len(edges):
            raise ValueError("'follow' lists the same edge twice; list each edge once")
        return value

    @property
    def edges(self) -> list[FollowEdge]:
        return [parse_edge(text) for text in self.follow]

    @property
    def tables(self) -> list[str]:
        """The root, then every table an edge names, each once."""
        names = [self.root]
        for edge in self.edges:
            names += [edge.child, edge.parent]
        return list(dict.fromkeys(names))

    def sample_size(self, matching: int) -> int:
        """How many of ``matching`` root rows the sample keeps (a percentage rounds up, so it keeps at
        least one row when any matches)."""
        if self.sample is None:
            return matching
        if isinstance(self.sample, int):
            return min(self.sample, matching)
        percent = float(str(self.sample).rstrip().rstrip("%"))
        return min(matching, math.ceil(matching * percent / 100 - 1e-9))


def subset_table_problems(subset: SubsetConfig, table_names: list[str] | None) -> list[str]:
    """What is wrong with the subset's table names given the file's tables (None: no ``tables`` list)."""
    if table_names is None:
        return ["'subset' needs a 'tables' list: it names the file's tables by their 'name'"]
    known = set(table_names)
    problems = []
    if subset.root not in known:
        problems.append(f"subset.root {subset.root!r} is not a table of this file; tables: {table_names}")
    for index, edge in enumerate(subset.edges):
        for role, name in (("child", edge.child), ("parent", edge.parent)):
            if name not in known:
                problems.append(
                    f"subset.follow[{index}] ({edge}): {role} table {name!r} is not a table of this file; "
                    f"tables: {table_names}"
                )
    return problems
