-- pgbench script: the batched reference. 1,000 transfers per database transaction with
-- set-based SQL: lock every wallet touched in id order, then one statement that writes the
-- transactions, the entries with running balances (window sum per wallet in posting order),
-- the aggregated balance deltas and the outbox events.
-- Variables from the command line: lo, hi (wallet numbers, see reference_setup.sql).
\set seed random(1, 1000000000)
BEGIN;
SELECT count(*) FROM (
    SELECT id FROM wallets
    WHERE id IN (SELECT src FROM bench_ref.transfers(:seed, 1000, :lo, :hi)
                 UNION SELECT dst FROM bench_ref.transfers(:seed, 1000, :lo, :hi))
    ORDER BY id FOR UPDATE
) AS locked;
WITH t AS MATERIALIZED (
    SELECT g, gen_random_uuid() AS id, src, dst, amount
    FROM bench_ref.transfers(:seed, 1000, :lo, :hi)
), legs AS MATERIALIZED (
    SELECT id AS tx_id, g, 0 AS leg, src AS wallet_id, 'DEBIT' AS direction, amount, -amount AS delta FROM t
    UNION ALL
    SELECT id, g, 1, dst, 'CREDIT', amount, amount FROM t
), upd AS (
    UPDATE wallets AS w SET balance = w.balance + d.delta, updated_at = now()
    FROM (SELECT wallet_id, sum(delta) AS delta FROM legs GROUP BY wallet_id) AS d
    WHERE w.id = d.wallet_id
), tx AS (
    INSERT INTO transactions (id, organization_id, destination_organization_id, idempotency_key,
        request_hash, kind, source_wallet_id, destination_wallet_id, amount, currency, status,
        posted_at)
    SELECT id, bench_ref.org_id(), bench_ref.org_id(), id::text, repeat('0', 64), 'TRANSFER',
        src, dst, amount, 'INR', 'COMPLETED', now()
    FROM t ORDER BY g
), ent AS (
    INSERT INTO ledger_entries (transaction_id, wallet_id, organization_id, direction, amount,
        currency, balance_after)
    SELECT legs.tx_id, legs.wallet_id, bench_ref.org_id(), legs.direction, legs.amount, 'INR',
        (SELECT w.balance FROM wallets AS w WHERE w.id = legs.wallet_id)
        + sum(legs.delta) OVER (PARTITION BY legs.wallet_id ORDER BY legs.g, legs.leg)
    FROM legs
    ORDER BY legs.g, legs.leg
)
INSERT INTO outbox (organization_id, type, data)
SELECT bench_ref.org_id(), 'transfer.completed', jsonb_build_object('id', id) FROM t;
END;
