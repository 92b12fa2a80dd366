"""Analytics rollups, kept in the same transaction as the state change they count.

Every transfer that reaches a final state passes through
`ledger_core.persistence.transfers.posting.write_plan` (posting, which runs the upserts
inside its one write statement) or `final_statements` (the cancel path, which runs
`rollup_statements`) for the final rows: one upsert adds them to
`transfer_rollups` (per organization, minute and hour, currency, status and failure code)
and, for completed ones, one more to `wallet_rollups` (per wallet and UTC day). The
analytics endpoints then sum a few thousand rollup rows instead of scanning millions of
transfers.

Contention and deadlocks: rows are upserted in key order. `transfer_rollups` rows are
spread over `SHARDS` by the writer's backend pid, so two posting workers rarely touch the
same row; a wallet's `wallet_rollups` row is written only by the batch that holds the
wallet's row lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import TextClause, text

from ledger_core.persistence.arrays import pg_array, pg_uuid_array
from ledger_core.transfers import leg_payees

SHARDS = 8
GRAINS = (60, 3600)
"""Bucket sizes kept, in seconds: minutes for short ranges, hours for days and weeks."""
EPOCH = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"
"""Buckets are aligned on UTC minutes and hours from this origin (`date_bin`)."""

UPSERT_TRANSFERS_SQL = f"""
    INSERT INTO transfer_rollups AS r
        (organization_id, grain, bucket_start, currency, status, failure_code, shard,
         transfer_count, volume)
    SELECT v.org, g.grain, date_bin(make_interval(secs => g.grain), now(), {EPOCH}),
           v.currency, v.status, v.code, pg_backend_pid() % {SHARDS}, count(*), sum(v.amount)
    FROM unnest(CAST(:rt_orgs AS uuid[]), CAST(:rt_currencies AS text[]),
                CAST(:rt_statuses AS text[]), CAST(:rt_codes AS text[]),
                CAST(:rt_amounts AS bigint[]))
         AS v(org, currency, status, code, amount)
    CROSS JOIN (VALUES {", ".join(f"({g})" for g in GRAINS)}) AS g(grain)
    GROUP BY v.org, g.grain, v.currency, v.status, v.code
    ORDER BY v.org, g.grain, v.currency, v.status, v.code
    ON CONFLICT (organization_id, grain, bucket_start, currency, status, failure_code, shard)
    DO UPDATE SET transfer_count = r.transfer_count + excluded.transfer_count,
                  volume = r.volume + excluded.volume
"""

INTO_WALLET_ROLLUPS = """
    INSERT INTO wallet_rollups AS r
        (organization_id, day, wallet_id, currency, debit_count, debit_volume, credit_count,
         credit_volume)
"""
ADD_TO_WALLET_DAY = """
    ON CONFLICT (organization_id, day, wallet_id)
    DO UPDATE SET debit_count = r.debit_count + excluded.debit_count,
                  debit_volume = r.debit_volume + excluded.debit_volume,
                  credit_count = r.credit_count + excluded.credit_count,
                  credit_volume = r.credit_volume + excluded.credit_volume
"""
"""How a wallet's counts for a day are added to `wallet_rollups`: to whatever its row for
that day holds already."""

UPSERT_WALLETS_SQL = f"""{INTO_WALLET_ROLLUPS}
    SELECT v.org, (now() AT TIME ZONE 'UTC')::date, v.wallet_id, min(v.currency),
           count(*) FILTER (WHERE v.debit), coalesce(sum(v.amount) FILTER (WHERE v.debit), 0),
           count(*) FILTER (WHERE NOT v.debit),
           coalesce(sum(v.amount) FILTER (WHERE NOT v.debit), 0)
    FROM unnest(CAST(:rw_orgs AS uuid[]), CAST(:rw_wallet_ids AS uuid[]),
                CAST(:rw_currencies AS text[]), CAST(:rw_debits AS boolean[]),
                CAST(:rw_amounts AS bigint[]))
         AS v(org, wallet_id, currency, debit, amount)
    GROUP BY v.org, v.wallet_id
    ORDER BY v.org, v.wallet_id{ADD_TO_WALLET_DAY}"""
"""The two upserts as SQL text. The posting batch runs the transfers' one as a part of its
one write statement (`rollup_params` gives its parameters) and counts wallets on their own
rows (`SET_COUNTED_BALANCES`); other paths run both (`rollup_statements`)."""

UPSERT_TRANSFERS = text(UPSERT_TRANSFERS_SQL)
UPSERT_WALLETS = text(UPSERT_WALLETS_SQL)

TODAY = "(SELECT timezone('UTC', now())::date AS day) AS t"
"""Today's UTC date as `t.day` (a transaction's `now()`), in a `FROM` list."""

SET_COUNTED_BALANCES = f"""
        UPDATE wallets AS w SET balance = v.balance, held = v.held, updated_at = now(),
            (counts_day, day_debit_count, day_debit_volume, day_credit_count,
             day_credit_volume) = (
                SELECT t.day, v.dn + k * w.day_debit_count, v.dv + k * w.day_debit_volume,
                       v.cn + k * w.day_credit_count, v.cv + k * w.day_credit_volume
                FROM (SELECT CASE w.counts_day WHEN t.day THEN 1 ELSE 0 END AS k) AS kept)
        FROM unnest(CAST(:wallet_ids AS uuid[]), CAST(:balances AS bigint[]),
                    CAST(:held AS bigint[]), CAST(:day_debits AS bigint[]),
                    CAST(:day_debit_volumes AS numeric[]), CAST(:day_credits AS bigint[]),
                    CAST(:day_credit_volumes AS numeric[])) AS v(id, balance, held, dn, dv, cn, cv),
             {TODAY}
        WHERE w.id = v.id
"""
"""Posting's update of the wallets it moved (`SET_BALANCES`), which also adds the
completed transfers of the batch to each wallet's counts of the day, starting them afresh
(`k` = 0) when the counts on the row are of another day (`FLUSH_WALLET_DAYS` moves those
first). Every wallet of the batch is stamped with the day, with nothing to add for one
that no completed transfer debited or credited (a clearing wallet, a hold's)."""

FLUSH_WALLET_DAYS = f"""{INTO_WALLET_ROLLUPS}
        SELECT organization_id, counts_day, id, currency, day_debit_count, day_debit_volume,
               day_credit_count, day_credit_volume
        FROM wallets, {TODAY}
        WHERE id = ANY(CAST(:wallet_ids AS uuid[])) AND counts_day <> t.day
          AND day_debit_count + day_credit_count > 0{ADD_TO_WALLET_DAY}"""
"""Moves the counts of another day off the wallets of a batch, which `SET_COUNTED_BALANCES`
is about to start counting today on. In the same statement as that update: every part of a
statement reads the rows as they were before it, so this reads the counts the update
replaces. Only a batch holding a wallet's row lock writes its rows here, so the order of
the rows needs no care."""


def _sides(m: Mapping[str, Any]) -> list[tuple[Any, str, int]]:
    """The organizations a final transfer counts for, each with the currency and amount it
    sees: the sender, a cross-org payee, and each payee of a multi-leg transaction's legs
    (its first leg's, as its view shows)."""
    sides = [(m["organization_id"], m["currency"], m["amount"])]
    if m.get("postings") is None:
        if m["destination_organization_id"] != m["organization_id"]:
            sides.append((m["destination_organization_id"], m["currency"], m["amount"]))
        return sides
    for payee in leg_payees(m):
        first = next(leg for leg in m["postings"] if _leg_org(m, leg) == payee)
        sides.append((payee, first["currency"], int(first["amount"])))
    return sides


def _leg_org(m: Mapping[str, Any], leg: Mapping[str, Any]) -> Any:
    """The organization a leg pays into (the payer's own for a leg inside it)."""
    payee = leg.get("destination_organization_id")
    return m["organization_id"] if payee is None else UUID(str(payee))


def rollup_statements(
    rows: Sequence[Mapping[str, Any]],
) -> list[tuple[TextClause, dict[str, str]]]:
    """The upserts that add transfers which just became final (rows of `transactions`).

    Run them in the transaction that made the change, sync or async alike.
    """
    t = _side_columns(rows)
    if not t["orgs"]:
        return []
    statements = [(UPSERT_TRANSFERS, _arrays("rt_", t))]
    w = _leg_columns(rows)
    if w["orgs"]:
        statements.append((UPSERT_WALLETS, _arrays("rw_", w)))
    return statements


def rollup_params(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The parameters of `UPSERT_TRANSFERS_SQL` (empty arrays, which add nothing, when no
    row counts); posting counts wallets with `wallet_day_params`."""
    return _arrays("rt_", _side_columns(rows))


def wallet_day_params(
    rows: Sequence[Mapping[str, Any]], wallet_ids: Sequence[UUID]
) -> dict[str, str]:
    """The day's counts of `SET_COUNTED_BALANCES`, in the order of `wallet_ids` (which
    holds every wallet a completed transfer among `rows` debited or credited): the number
    and volume of each wallet's debits and credits. A multi-leg transaction's legs name
    their wallets and amounts as its JSON holds them (text)."""
    at = {wallet_id: n for n, wallet_id in enumerate(wallet_ids)}
    debits, credits = [0] * len(at), [0] * len(at)
    debit_volumes, credit_volumes = [0] * len(at), [0] * len(at)
    for _org, wallet_id, _currency, debit, amount in _completed_legs(rows):
        n = at[wallet_id if isinstance(wallet_id, UUID) else UUID(wallet_id)]
        if debit:
            debits[n] += 1
            debit_volumes[n] += int(amount)
        else:
            credits[n] += 1
            credit_volumes[n] += int(amount)
    return {
        "day_debits": pg_array(debits),
        "day_debit_volumes": pg_array(debit_volumes),
        "day_credits": pg_array(credits),
        "day_credit_volumes": pg_array(credit_volumes),
    }


def _side_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """`UPSERT_TRANSFERS`' columns: one per organization side for every final transfer
    (HELD ones are counted when the hold ends)."""
    sides: list[tuple[Any, str, str, str, int]] = []
    for m in rows:
        status = m["status"]
        if status == "HELD":
            continue
        code = m["failure_code"] or ""
        sides.extend((org, currency, status, code, amount) for org, currency, amount in _sides(m))
    return _named(("orgs", "currencies", "statuses", "codes", "amounts"), sides)


def _leg_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """`UPSERT_WALLETS`' columns: one per wallet leg of every completed transfer."""
    return _named(("orgs", "wallet_ids", "currencies", "debits", "amounts"), _completed_legs(rows))


def _completed_legs(rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, Any, str, bool, int]]:
    """The wallet legs (`_wallet_legs`) of the completed transfers among `rows`."""
    return [leg for m in rows if m["status"] == "COMPLETED" for leg in _wallet_legs(m)]


def _named(names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Rows turned into named columns (empty ones for no rows)."""
    columns = list(zip(*rows, strict=True)) or [()] * len(names)
    return {name: list(column) for name, column in zip(names, columns, strict=True)}


def _wallet_legs(m: Mapping[str, Any]) -> list[tuple[Any, Any, str, bool, int]]:
    """Each wallet a completed transaction debited or credited (every leg of a MULTI), as
    (organization, wallet, currency, debit, amount)."""
    postings = m.get("postings")
    if not postings:
        currency, amount = m["currency"], m["amount"]
        return [
            (m["organization_id"], m["source_wallet_id"], currency, True, amount),
            (m["destination_organization_id"], m["destination_wallet_id"], currency, False, amount),
        ]
    out: list[tuple[Any, Any, str, bool, int]] = []
    for leg in postings:
        currency, amount = leg["currency"], leg["amount"]
        out.append((m["organization_id"], leg["source_wallet_id"], currency, True, amount))
        out.append((_leg_org(m, leg), leg["destination_wallet_id"], currency, False, amount))
    return out


UUID_COLUMNS = frozenset({"orgs", "wallet_ids"})


def _arrays(prefix: str, columns: dict[str, list[Any]]) -> dict[str, str]:
    return {
        prefix + name: (pg_uuid_array if name in UUID_COLUMNS else pg_array)(values)
        for name, values in columns.items()
    }
