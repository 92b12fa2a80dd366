"""The load generator's latency statistics: nearest-rank percentiles."""

from __future__ import annotations

import pytest

from bench.loadgen import percentile, random_amount, summarize


def test_nearest_rank_on_one_to_a_hundred() -> None:
    """On 1..100 the q-th percentile is q itself, whatever the input order."""
    values = [float(v) for v in reversed(range(1, 101))]
    assert [percentile(values, q) for q in (1, 50, 99, 100)] == [1.0, 50.0, 99.0, 100.0]


def test_nearest_rank_rounds_the_rank_up() -> None:
    """p50 of four values is the second; p99 of ten values is the largest."""
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile([float(v) for v in range(10)], 99) == 9.0
    assert percentile([7.5], 99) == 7.5


def test_empty_and_out_of_range() -> None:
    """No samples gives no percentile; q outside (0, 100] is refused."""
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 0)
    with pytest.raises(ValueError):
        percentile([1.0], 100.5)


def test_summary_has_count_and_rounded_percentiles() -> None:
    summary = summarize([0.123, 10.06, 20.0])
    assert summary == {"count": 3.0, "p50": 10.1, "p90": 20.0, "p99": 20.0, "max": 20.0}
    assert summarize([])["p99"] is None


def test_amounts_are_small_decimal_strings() -> None:
    """Never a float on the wire, never more than 0.99, never zero."""
    for _ in range(200):
        amount = random_amount()
        assert amount.startswith("0.") and len(amount) == 4 and amount != "0.00"
