-- pgbench script: the per-commit reference. One transfer per database transaction, done as a
-- posting worker would: lock both wallets in id order, update the two balances, insert the
-- transaction, its two entries (with running balances) and its outbox event.
-- Variables from the command line: lo, hi (wallet numbers, see reference_setup.sql).
\set a random(:lo, :hi)
\set d random(1, :hi - :lo)
\set b :lo + (:a - :lo + :d) % (:hi - :lo + 1)
\set amt random(1, 100)
BEGIN;
SELECT id FROM wallets WHERE id IN (bench_ref.wid(:a), bench_ref.wid(:b)) ORDER BY id FOR UPDATE;
WITH upd AS (
    UPDATE wallets AS w SET balance = w.balance + v.delta, updated_at = now()
    FROM (VALUES (bench_ref.wid(:a), -(:amt)::bigint), (bench_ref.wid(:b), (:amt)::bigint)) AS v (id, delta)
    WHERE w.id = v.id
    RETURNING w.id, w.balance, v.delta
), tx AS (
    INSERT INTO transactions (organization_id, destination_organization_id, idempotency_key,
        request_hash, kind, source_wallet_id, destination_wallet_id, amount, currency, status,
        posted_at)
    VALUES (bench_ref.org_id(), bench_ref.org_id(), gen_random_uuid()::text, repeat('0', 64),
        'TRANSFER', bench_ref.wid(:a), bench_ref.wid(:b), (:amt)::bigint, 'INR', 'COMPLETED', now())
    RETURNING id
), ent AS (
    INSERT INTO ledger_entries (transaction_id, wallet_id, organization_id, direction, amount,
        currency, balance_after)
    SELECT tx.id, upd.id, bench_ref.org_id(), CASE WHEN upd.delta < 0 THEN 'DEBIT' ELSE 'CREDIT' END,
        (:amt)::bigint, 'INR', upd.balance
    FROM tx, upd ORDER BY upd.delta
)
INSERT INTO outbox (organization_id, type, data)
SELECT bench_ref.org_id(), 'transfer.completed', jsonb_build_object('id', tx.id) FROM tx;
END;
