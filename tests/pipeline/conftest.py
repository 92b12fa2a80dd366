from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.support.brokers import start_empty
from tests.support.stack import Stack

BROKERS = ("redis", "rabbitmq")


@pytest.fixture(scope="module", params=BROKERS)
def broker_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    """Every pipeline test runs on both brokers; RabbitMQ's skip when none is reachable."""
    if request.param == "rabbitmq":
        return str(request.getfixturevalue("amqp_url"))
    return redis_url


@pytest.fixture(scope="module")
def stack(
    database_url: str,
    redis_url: str,
    broker_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """Gateway, posting workers and relay as real processes over the test database, on a
    broker with nothing left on it by an earlier module's stack."""
    start_empty(broker_url)
    data_dir: Path = tmp_path_factory.mktemp("stack")
    with Stack(
        database_url,
        redis_url,
        data_dir,
        extra_env={"VAULTCRAFT_PENDING_RESCUE_AFTER_S": "2"},
        broker_url=broker_url,
    ) as running:
        yield running


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=40) as client:
        yield client


@pytest.fixture
def poisoned_amount(engine: Engine) -> Iterator[str]:
    """Entries of 42.42 are refused by a trigger, as a bug in the write path would refuse them."""
    with engine.begin() as conn:
        conn.exec_driver_sql("""
            CREATE FUNCTION refuse_4242() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.amount = 4242 THEN RAISE EXCEPTION 'simulated write bug'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_4242 BEFORE INSERT ON ledger_entries
                FOR EACH ROW EXECUTE FUNCTION refuse_4242();
        """)
    yield "42.42"
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "DROP TRIGGER refuse_4242 ON ledger_entries; DROP FUNCTION refuse_4242();"
        )
