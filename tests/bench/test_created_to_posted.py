"""The fixed-rate benchmark's server latency: from each transfer's intake transaction to its
posting transaction, read from the rows, for the round's transfers only."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from bench.profile_stats import created_to_posted_ms
from tests.support.databases import fresh_database
from tests.support.ledger import create_book, insert_intents


def test_the_wait_from_intake_to_posting_is_summarized_for_the_tag_alone(
    service_urls: tuple[str, str],
) -> None:
    """On a database of its own: the rows are stamped by hand, not posted."""
    with fresh_database(service_urls[0], "vaultcraft_posted_bench") as url:
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                book = create_book(engine, 2)
                a, b = book.wallet_ids
                ids = insert_intents(conn, book, [(a, b, 1)] * 5)
                for n, transfer_id in enumerate(ids):
                    conn.execute(
                        text(
                            "UPDATE transactions SET description = :tag,"
                            " posted_at = created_at + make_interval(secs => :s)"
                            " WHERE id = :id"
                        ),
                        {
                            "tag": "round" if n < 4 else "other",
                            "s": 0.01 * (n + 1),
                            "id": transfer_id,
                        },
                    )
        finally:
            engine.dispose()
        out = created_to_posted_ms(url, str(book.organization_id), "round")
    assert out == {"count": 4.0, "p50": 20.0, "p90": 40.0, "p99": 40.0, "max": 40.0}
