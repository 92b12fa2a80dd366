"""The state test of a statement that finds its rows by key: `STILL_PENDING`."""

STILL_PENDING = "status = (SELECT 'PENDING')"
"""`status = 'PENDING'` for a statement that finds its rows by key (an id, a list of ids, an
atomic batch) and must touch only those still waiting.

Written plainly, the condition matches the predicate of the PENDING partial indexes
(`ix_transactions_pending_org_seq`, `ix_webhook_deliveries_due`,
`ix_hold_actions_pending_seq`), and the planner may walk one of them, the whole backlog,
testing each entry against the key, instead of using the key's index. It does so once a
backlog has grown since the last ANALYZE, whose statistics say almost nothing waits.
Compared with a subquery's value, which the planner does not know when it plans, the state
can no longer choose a partial index. Behind 100,000 waiting transfers, one cancel took
38 ms that way against 0.3 ms, and one batch's `relock` took 250-450 ms of PostgreSQL CPU."""
