"""What a profiling run measures besides the load itself: CPU per process, py-spy samples,
per-statement database time, and group-commit and posting-batch sizes.

Everything here reads what the product already exposes (/proc, py-spy's raw stacks,
pg_stat_statements when the server preloads it, the rows' own timestamps), so profiling
needs no change to the product.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from bench.loadgen import percentile, summarize
from runtime.settings import to_psycopg_url

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """utime + stime of every process on the machine: pid -> (name, seconds)."""
    out: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        out[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / TICKS)
    return out


def cpu_by_group(
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    groups: dict[int, str],
) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by role (`groups`: pid -> role) or by name."""
    spent: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        used = seconds - before.get(pid, (name, 0.0))[1]
        if used > 0:
            group = groups.get(pid, name)
            spent[group] = spent.get(group, 0.0) + used
    top = sorted(spent.items(), key=lambda item: -item[1])[:12]
    return {k: round(v, 2) for k, v in top}


def database_backends(db_url: str) -> set[int]:
    """Process ids of the server's backends connected to this database (PostgreSQL on this
    machine), so their CPU can be told from other users' on a shared server."""
    return set(database_clients(db_url))


def database_clients(db_url: str) -> dict[int, str]:
    """The server's backends connected to this database, each with the client it serves:
    its `application_name`, else its backend type."""
    with psycopg.connect(to_psycopg_url(db_url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, coalesce(nullif(application_name, ''), backend_type)"
            " FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return {int(pid): str(client) for pid, client in rows}


def postgres_cpu_ms_by_client(
    db_url: str,
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    transfers: int,
) -> dict[str, float]:
    """CPU-ms a transfer that this database's backends spent between two snapshots, by the
    client each serves (`database_clients`: backends still connected at the end)."""
    clients = database_clients(db_url)
    backends = {pid: after[pid] for pid in clients if pid in after}
    spent = cpu_by_group(before, backends, clients)
    return (
        {client: round(1000 * s / transfers, 3) for client, s in spent.items()} if transfers else {}
    )


def cpu_of(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], pids: set[int]
) -> float:
    """CPU seconds the processes `pids` spent between two snapshots (all of it for one
    that started in between)."""
    return round(sum(after[p][1] - before.get(p, ("", 0.0))[1] for p in pids if p in after), 2)


def multixacts_used(db_url: str) -> int:
    """MultiXact ids handed out so far, server-wide, up to a constant: the age of
    template0's oldest MultiXact (frozen, so only the counter moves)."""
    with psycopg.connect(to_psycopg_url(db_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT mxid_age(datminmxid) FROM pg_database WHERE datname = 'template0'"
        ).fetchone()
    return int(row[0]) if row else 0


def wal_position(db_url: str) -> int:
    """The server's write-ahead log position in bytes: the difference of two readings is
    what every writer on the server logged between them (heap and index changes, full-page
    images after a checkpoint), a measure of write volume that the core's speed does not
    move."""
    with psycopg.connect(to_psycopg_url(db_url), autocommit=True) as conn:
        row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").fetchone()
    return int(row[0]) if row else 0


def database_size(db_url: str) -> int:
    """The database's size on disk in bytes: every table's and index's files, dead row
    versions included (nothing vacuums them during a scenario with `autovacuum` off). The
    difference of two readings is what the stored history grew by."""
    with psycopg.connect(to_psycopg_url(db_url), autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def read_raw_stacks(path: Path) -> Counter[tuple[str, ...]]:
    """py-spy `--format raw` (collapsed stacks, root first) as a stack -> samples counter."""
    stacks: Counter[tuple[str, ...]] = Counter()
    if not path.exists():
        return stacks
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def _frame(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `func (module.py)`: lines merged, paths shortened."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({file})" if file else name


def hot_frames(
    stacks: Counter[tuple[str, ...]], focus: str, rate: int, top: int = 20
) -> dict[str, Any]:
    """Where the samples under the `focus` frame went (idle threads are sampled too, so
    `focus_thread_s` is thread-seconds spent inside it, waits on PostgreSQL included), as
    percentages of the focus samples: inclusive (the frame or its callees) and self."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = focused = 0
    for stack, count in stacks.items():
        total += count
        frames = [_frame(f) for f in stack if not f.startswith(("process ", "thread "))]
        if not any(f.startswith(focus) for f in frames):
            continue
        focused += count
        frames = frames[next(i for i, f in enumerate(frames) if f.startswith(focus)) :]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / focused, 1)) for k, v in counter.most_common(top)]

    return {
        "samples": total,
        "focus": focus,
        "focus_thread_s": round(focused / rate, 2),
        "inclusive_pct": pct(inclusive) if focused else [],
        "self_pct": pct(own) if focused else [],
    }


STATEMENTS = """
    SELECT calls, round(total_exec_time::numeric, 1) AS total_ms,
           round(mean_exec_time::numeric, 3) AS mean_ms, rows,
           round((jit_generation_time + jit_inlining_time + jit_optimization_time
                  + jit_emission_time)::numeric, 1) AS jit_ms,
           regexp_replace(left(query, 160), '\\s+', ' ', 'g') AS query
    FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
    ORDER BY total_exec_time DESC LIMIT %s
"""
"""The statements that took the most time, with what JIT compilation took of it: a
statement compiled at every call (an estimate grown with a table) shows as `jit_ms`."""


def enable_statements(db_url: str) -> str | None:
    """Create and reset pg_stat_statements; the reason when the server cannot."""
    try:
        with psycopg.connect(to_psycopg_url(db_url), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset()")
    except psycopg.Error as exc:
        return f"pg_stat_statements not available: {str(exc).strip()[:200]}"
    return None


def top_statements(db_url: str, limit: int = 15) -> list[dict[str, Any]]:
    with psycopg.connect(to_psycopg_url(db_url)) as conn:
        cur = conn.execute(STATEMENTS, (limit,))
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _sizes(sizes: list[float]) -> dict[str, float | None]:
    return {
        "groups": float(len(sizes)),
        "mean": round(sum(sizes) / len(sizes), 1) if sizes else None,
        "p50": percentile(sizes, 50),
        "p90": percentile(sizes, 90),
        "max": max(sizes) if sizes else None,
    }


def tagged_rows(
    db_url: str, organization_id: str, tag: str, select: str, rest: str = ""
) -> list[tuple[Any, ...]]:
    """`SELECT {select}` over the transfers one load sent (its organization, its `tag` as
    the description), with `rest` (more conditions, a grouping) after the filter."""
    with psycopg.connect(to_psycopg_url(db_url)) as conn:
        return conn.execute(
            f"SELECT {select} FROM transactions"
            f" WHERE organization_id = %s AND description = %s {rest}",
            (organization_id, tag),
        ).fetchall()


def group_sizes(db_url: str, organization_id: str, tag: str) -> dict[str, Any]:
    """Transfers per gateway commit and per posting transaction, from the rows' timestamps.

    `created_at` and `posted_at` default to `now()`, the start of the writing transaction,
    so the rows one commit stored share one value: counting rows per value counts commits.
    """
    out: dict[str, Any] = {}
    for name, column in (("intake_commit", "created_at"), ("posting_batch", "posted_at")):
        rows = tagged_rows(
            db_url, organization_id, tag, "count(*)", f"AND {column} IS NOT NULL GROUP BY {column}"
        )
        out[name] = _sizes([float(n) for (n,) in rows])
    return out


def created_to_posted_ms(db_url: str, organization_id: str, tag: str) -> dict[str, float | None]:
    """From each posted transfer's intake transaction to its posting transaction (both
    columns hold their writing transaction's start), in ms: the server's share of the time
    from submit to final, which the pacing waits add to."""
    rows = tagged_rows(
        db_url,
        organization_id,
        tag,
        "extract(epoch FROM posted_at - created_at) * 1000",
        "AND posted_at IS NOT NULL",
    )
    return summarize([float(ms) for (ms,) in rows])


STATS_SETTLE_S = 11.0
"""Backends publish their table counters when idle, at most every 10 s (PostgreSQL 15's
PGSTAT_IDLE_INTERVAL): wait that long before reading them."""

_TABLE_WRITES = """
    SELECT t.relname, t.n_tup_ins, t.n_tup_upd, t.n_tup_hot_upd, t.n_tup_del,
           (SELECT count(*) FROM pg_index i WHERE i.indrelid = t.relid) AS indexes,
           (SELECT CAST(coalesce(sum(pg_relation_size(i.indexrelid)), 0) AS bigint) FROM pg_index i
            WHERE i.indrelid = t.relid) AS index_bytes
    FROM pg_stat_user_tables t
"""


def table_writes(db_url: str) -> dict[str, tuple[int, int, int, int, int, int]]:
    """Rows inserted, updated, updated HOT and deleted so far, index count and the indexes'
    size in bytes, by table."""
    with psycopg.connect(to_psycopg_url(db_url), autocommit=True) as conn:
        return {row[0]: tuple(row[1:]) for row in conn.execute(_TABLE_WRITES)}


def rows_written(
    before: dict[str, tuple[int, int, int, int, int, int]],
    after: dict[str, tuple[int, int, int, int, int, int]],
    transfers: int,
) -> dict[str, Any]:
    """Rows and index entries written per posted transfer, by table and in all.

    An insert writes the row and one entry in each index; an update writes a new row
    version and, unless it is HOT, one entry in each index too. The index figure is an
    upper bound: a partial index whose predicate leaves the row out gets no entry, and the
    statistics do not say which did. The indexes' growth in bytes counts only what was
    written (pages split or added, a GIN index's pending list included).
    """
    by_table: dict[str, dict[str, float]] = {}
    rows = index_entries = index_bytes = 0
    for table, (ins, upd, hot, dele, indexes, size) in after.items():
        b_ins, b_upd, b_hot, b_del, _, b_size = before.get(table, (0, 0, 0, 0, 0, 0))
        d_ins, d_upd, d_hot, d_del = ins - b_ins, upd - b_upd, hot - b_hot, dele - b_del
        if not (d_ins or d_upd or d_del):
            continue
        entries = (d_ins + d_upd - d_hot) * indexes
        rows += d_ins + d_upd + d_del
        index_entries += entries
        index_bytes += size - b_size
        by_table[table] = {
            "inserted": round(d_ins / transfers, 3),
            "updated": round(d_upd / transfers, 3),
            "updated_hot": round(d_hot / transfers, 3),
            "deleted": round(d_del / transfers, 3),
            "index_entries": round(entries / transfers, 3),
            "index_bytes": round((size - b_size) / transfers, 1),
        }
    return {
        "transfers": transfers,
        "rows_per_transfer": round(rows / max(transfers, 1), 3),
        "index_entries_per_transfer": round(index_entries / max(transfers, 1), 3),
        "index_bytes_per_transfer": round(index_bytes / max(transfers, 1), 1),
        "by_table": by_table,
    }
