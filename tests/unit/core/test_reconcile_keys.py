"""The key-set merge of reconcile and when a reconcile is due."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from airflow_provider_sync.core.reconcile import keys_only_in_target
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.operators.reconcile import is_due


def test_keys_only_in_the_target_are_found_in_one_pass() -> None:
    rng = random.Random(7)
    target = sorted(rng.sample(range(10_000), 3_000))
    source = sorted(set(target) - set(rng.sample(target, 300)) | set(rng.sample(range(10_000, 20_000), 50)))
    found = list(keys_only_in_target(((k,) for k in source), ((k,) for k in target)))
    assert found == [(k,) for k in target if k not in set(source)]
    assert len(found) == 300


def test_edges() -> None:
    assert list(keys_only_in_target([], [(1,), (2,)])) == [(1,), (2,)]
    assert list(keys_only_in_target([(1,), (2,)], [])) == []
    assert list(keys_only_in_target([(1, "a"), (1, "b")], [(1, "a"), (1, "c")])) == [(1, "c")]


def test_an_unsorted_stream_is_refused_not_misread() -> None:
    with pytest.raises(TerminalError, match=r"target's keys did not arrive in strictly ascending order"):
        list(keys_only_in_target([(1,), (2,)], [(2,), (1,)]))
    with pytest.raises(TerminalError, match=r"source's keys"):
        list(keys_only_in_target([(1,), (1,)], [(5,)]))


def test_due_every_n_runs_or_once_per_period() -> None:
    now = dt.datetime(2026, 3, 2, 12, tzinfo=dt.timezone.utc)
    assert not is_due(3, {"runs_since": 1}, now) and is_due(3, {"runs_since": 2}, now)
    assert is_due(1, {}, now)
    assert is_due("@daily", {}, now)
    assert not is_due("@daily", {"last": "2026-03-02T00:30:00+00:00"}, now)
    assert is_due("@daily", {"last": "2026-03-01T23:59:00+00:00"}, now)
