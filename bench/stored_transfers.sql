-- Set-based fill: bench.count completed, balanced transfers between the ACTIVE PRIMARY
-- wallets of organization bench.org_id, with entries (running balances in posting order)
-- and already-relayed outbox events (the relay's position moved past them when nothing
-- else waits before them), as a ledger that has been in use for a while holds.
-- Amounts are 1..100 minor units, so funded wallets never run out. Timestamps are spread
-- 100 us apart, ending now, as history written at 10,000 transfers/s would be (not one
-- instant shared by every row), but never before the newest entry already written, so each
-- wallet's entries stay in the same order by (created_at, id) as by id. Runs in one
-- transaction.
SELECT count(*) FROM (
    SELECT id FROM wallets
    WHERE organization_id = current_setting('bench.org_id')::uuid AND type = 'PRIMARY'
    ORDER BY id FOR UPDATE
) AS locked;

CREATE TEMP TABLE bench_fill_wallets ON COMMIT DROP AS
SELECT row_number() OVER (ORDER BY id) - 1 AS n, id, currency
FROM wallets
WHERE organization_id = current_setting('bench.org_id')::uuid AND type = 'PRIMARY'
  AND status = 'ACTIVE';

ANALYZE bench_fill_wallets;

WITH c AS (
    SELECT count(*) AS cnt FROM bench_fill_wallets
), p AS MATERIALIZED (
    SELECT g, gen_random_uuid() AS id, x.a,
           (x.a + 1 + floor(random() * (c.cnt - 1))::bigint) % c.cnt AS b,
           1 + floor(random() * 100)::bigint AS amount
    FROM c, generate_series(1, current_setting('bench.count')::bigint) AS g,
         LATERAL (SELECT floor(random() * c.cnt)::bigint AS a OFFSET 0) AS x
), t AS MATERIALIZED (
    SELECT p.g, p.id, s.id AS src, d.id AS dst, p.amount, s.currency,
           greatest(
               now() - (current_setting('bench.count')::bigint - p.g) * interval '100 microseconds',
               (SELECT max(created_at) FROM ledger_entries)
           ) AS at
    FROM p JOIN bench_fill_wallets AS s ON s.n = p.a JOIN bench_fill_wallets AS d ON d.n = p.b
), legs AS MATERIALIZED (
    SELECT id AS tx_id, g, 0 AS leg, src AS wallet_id, 'DEBIT' AS direction, amount, -amount AS delta, currency, at FROM t
    UNION ALL
    SELECT id, g, 1, dst, 'CREDIT', amount, amount, currency, at FROM t
), upd AS (
    UPDATE wallets AS w SET balance = w.balance + d.delta, updated_at = now()
    FROM (SELECT wallet_id, sum(delta) AS delta FROM legs GROUP BY wallet_id) AS d
    WHERE w.id = d.wallet_id
), tx AS (
    INSERT INTO transactions (id, organization_id, destination_organization_id, idempotency_key,
        request_hash, kind, source_wallet_id, destination_wallet_id, amount, currency, status,
        description, created_at, posted_at)
    SELECT id, current_setting('bench.org_id')::uuid, current_setting('bench.org_id')::uuid,
        'stored-' || id::text, repeat('0', 64), 'TRANSFER', src, dst, amount, currency,
        'COMPLETED', 'stored history', at, at
    FROM t ORDER BY g
), ent AS (
    INSERT INTO ledger_entries (transaction_id, wallet_id, organization_id, direction, amount,
        currency, balance_after, created_at)
    SELECT legs.tx_id, legs.wallet_id, current_setting('bench.org_id')::uuid, legs.direction,
        legs.amount, legs.currency,
        (SELECT w.balance FROM wallets AS w WHERE w.id = legs.wallet_id)
        + sum(legs.delta) OVER (PARTITION BY legs.wallet_id ORDER BY legs.g, legs.leg),
        legs.at
    FROM legs
    ORDER BY legs.g, legs.leg
)
INSERT INTO outbox (organization_id, type, data, created_at)
SELECT current_setting('bench.org_id')::uuid, 'transfer.completed',
    jsonb_build_object('id', id), at
FROM t;
WITH filled AS (
    SELECT min(o.id) AS first, max(o.id) AS last FROM outbox AS o
    WHERE o.id > (SELECT position FROM outbox_relay_cursor) AND o.xmin = pg_current_xact_id()::xid
)
UPDATE outbox_relay_cursor AS c SET position = filled.last
FROM filled
WHERE filled.last IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM outbox AS o WHERE o.id > c.position AND o.id < filled.first);
