-- Reference organization for the pgbench references: a SYSTEM wallet (number 0) and
-- PRIMARY wallets 1..n, each funded by a completed deposit from SYSTEM, so the ledger is
-- balanced before pgbench starts. Wallet ids are derived from their number
-- (bench_ref.wid), so pgbench can pick a random wallet without a lookup table.
-- Reads the wallet count from the session setting bench.n_wallets.
CREATE SCHEMA IF NOT EXISTS bench_ref;

CREATE OR REPLACE FUNCTION bench_ref.wid(n bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ('00000000-0000-4000-a000-' || lpad(to_hex(n), 12, '0'))::uuid $$;

CREATE OR REPLACE FUNCTION bench_ref.org_id() RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '00000000-0000-4000-b000-000000000001'::uuid $$;

-- 1,000 pseudo-random transfers (src <> dst in lo..hi, amount 1..100 minor units) from a seed;
-- the batched reference calls it twice per transaction (lock, then post) with one seed.
CREATE OR REPLACE FUNCTION bench_ref.transfers(seed bigint, n integer, lo bigint, hi bigint)
RETURNS TABLE (g integer, src uuid, dst uuid, amount bigint)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT s.g,
           bench_ref.wid(lo + a),
           bench_ref.wid(lo + (a + 1 + abs(hashint8(seed * 4000 + 2000 + s.g)::bigint) % (hi - lo)) % (hi - lo + 1)),
           1 + abs(hashint8(seed * 4000 + 3000 + s.g)::bigint) % 100
    FROM generate_series(1, n) AS s(g),
         LATERAL (SELECT abs(hashint8(seed * 4000 + s.g)::bigint) % (hi - lo + 1) AS a) AS pick
$$;

INSERT INTO organizations (id, name, default_currency)
VALUES (bench_ref.org_id(), 'pgbench reference', 'INR')
ON CONFLICT (id) DO NOTHING;

INSERT INTO wallets (id, organization_id, type, currency, balance, name)
VALUES (bench_ref.wid(0), bench_ref.org_id(), 'SYSTEM', 'INR', 0, 'reference system')
ON CONFLICT (id) DO NOTHING;

CREATE TEMP TABLE bench_ref_new ON COMMIT DROP AS
SELECT n, bench_ref.wid(n) AS wallet_id, gen_random_uuid() AS tx_id
FROM generate_series(1, current_setting('bench.n_wallets')::bigint) AS n
WHERE NOT EXISTS (SELECT 1 FROM wallets w WHERE w.id = bench_ref.wid(n));

INSERT INTO wallets (id, organization_id, type, currency, balance, name)
SELECT wallet_id, bench_ref.org_id(), 'PRIMARY', 'INR', 1000000000, 'reference ' || n
FROM bench_ref_new ORDER BY n;

INSERT INTO transactions (id, organization_id, destination_organization_id, idempotency_key,
    request_hash, kind, source_wallet_id, destination_wallet_id, amount, currency, status,
    posted_at)
SELECT tx_id, bench_ref.org_id(), bench_ref.org_id(), 'ref-fund-' || n, repeat('0', 64),
    'TRANSFER', bench_ref.wid(0), wallet_id, 1000000000, 'INR', 'COMPLETED', now()
FROM bench_ref_new ORDER BY n;

-- The SYSTEM wallet's running balance continues from what it held before this set-up.
INSERT INTO ledger_entries (transaction_id, wallet_id, organization_id, direction, amount,
    currency, balance_after)
SELECT tx_id, leg_wallet, bench_ref.org_id(), direction, 1000000000, 'INR', balance_after
FROM (
    SELECT n, 0 AS leg, tx_id, bench_ref.wid(0) AS leg_wallet, 'DEBIT' AS direction,
           (SELECT balance FROM wallets WHERE id = bench_ref.wid(0))
           - 1000000000 * row_number() OVER (ORDER BY n) AS balance_after
    FROM bench_ref_new
    UNION ALL
    SELECT n, 1, tx_id, wallet_id, 'CREDIT', 1000000000 FROM bench_ref_new
) AS legs
ORDER BY n, leg;

UPDATE wallets
SET balance = balance - 1000000000 * (SELECT count(*) FROM bench_ref_new), updated_at = now()
WHERE id = bench_ref.wid(0);
