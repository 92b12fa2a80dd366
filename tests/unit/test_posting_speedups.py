"""The posting batch's shortcuts write exactly what the plain paths write."""

from __future__ import annotations

import random
import uuid

from prometheus_client import CollectorRegistry, Histogram
from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH
from sqlalchemy.dialects import postgresql

from ledger_core.persistence.arrays import _FORMATS, _element, pg_array
from ledger_core.persistence.transfers.posting import WRITE_BATCH
from runtime.metrics import LATENCY_BUCKETS, observe_each


def _element_wise(values: list[object]) -> str:
    return "{" + ",".join([_FORMATS.get(type(v), _element)(v) for v in values]) + "}"


def test_array_literals_of_one_type_match_the_element_wise_literal() -> None:
    rng = random.Random(7)
    alphabet = 'ab"\\,{} NULL\u00e9\x00'
    makers = {
        "text": lambda: "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5))),
        "int": lambda: rng.randint(-(2**63), 2**63 - 1),
        "uuid": uuid.uuid4,
        "bool": lambda: rng.random() < 0.5,
        "none": lambda: None,
    }
    for _ in range(3000):
        size = rng.randint(0, 6)
        if rng.random() < 0.2:
            values = [makers[rng.choice(list(makers))]() for _ in range(size)]
        else:
            make = makers[rng.choice(list(makers))]
            values = [make() for _ in range(size)]
        assert pg_array(values) == _element_wise(values), values
        assert pg_array(iter(values)) == _element_wise(values), values


def test_observe_each_counts_as_observe_does() -> None:
    one_by_one = Histogram("h", "h", buckets=LATENCY_BUCKETS, registry=CollectorRegistry())
    at_once = Histogram("h", "h", buckets=LATENCY_BUCKETS, registry=CollectorRegistry())
    rng = random.Random(3)
    amounts = [0.0, 0.001, 10.0, 11.0, *LATENCY_BUCKETS] + [rng.random() * 3 for _ in range(200)]
    for amount in amounts:
        one_by_one.observe(amount)
    observe_each(at_once, amounts)
    observe_each(at_once, [])

    def samples(histogram: Histogram) -> dict[str, float]:
        (metric,) = histogram.collect()
        return {
            f"{s.name[-7:]}{s.labels}": s.value for s in metric.samples if "created" not in s.name
        }

    expected, got = samples(one_by_one), samples(at_once)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert abs(got[key] - value) < 1e-9, key


def test_the_batch_write_fits_the_drivers_statement_cache() -> None:
    """psycopg converts the placeholders of a longer statement again at every batch."""
    compiled = str(WRITE_BATCH.compile(dialect=postgresql.psycopg.dialect()))
    assert len(compiled.encode()) <= MAX_CACHED_STATEMENT_LENGTH
