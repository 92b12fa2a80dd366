"""What the operator commands do: create an organization, reconcile now, verify the ledger.

Each returns the command's exit code and writes its result to stdout, progress to
stderr. They call the same `ledger_core` functions the API and the workers use, so an
organization made here is the one signup makes, and a reconciliation run here is recorded
like a scheduled one (it shows up in `GET /reconciliations`).
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from typing import TYPE_CHECKING, TextIO

from pydantic import ValidationError
from sqlalchemy import Connection, create_engine

from runtime.settings import Settings
from vaultcraft.progress import ProgressLine

if TYPE_CHECKING:
    from gateway.schemas.accounts import Signup
    from ledger_core.accounts import Organization, User
    from ledger_core.wallets import Wallet

SHOWN = 50
"""Findings listed in full; the rest are counted."""

EXIT_DRIFT = 1
EXIT_RUN_FAILED = 2
EXIT_INVALID = 2


def create_org(
    settings: Settings,
    *,
    name: str,
    email: str,
    password: str,
    full_name: str,
    currency: str,
    out: TextIO = sys.stdout,
) -> int:
    """Create an organization, its ADMIN and its SYSTEM wallet, validated as signup is."""
    from gateway.auth import hash_password_sync
    from gateway.schemas.accounts import Signup
    from ledger_core.errors import DomainError

    try:
        body = Signup.model_validate(
            {
                "email": email,
                "password": password,
                "full_name": full_name,
                "organization_name": name,
                "default_currency": currency,
            }
        )
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            field = ".".join(str(part) for part in error["loc"])
            print(f"--{field.replace('_', '-')}: {error['msg']}", file=sys.stderr)
        return EXIT_INVALID
    with ProgressLine() as progress:
        progress.step("Hashing the password")
        password_hash = hash_password_sync(body.password, settings.bcrypt_rounds)
        progress.step("Creating the organization")
        try:
            org, user, wallet = asyncio.run(_sign_up(settings, body, password_hash))
        except DomainError as exc:
            progress.close("refused")
            print(f"Refused ({exc.code}): {exc.detail}", file=sys.stderr)
            return 1
    print(f"Organization {org.name}: {org.id}", file=out)
    print(f"ADMIN user {user.email}: {user.id}", file=out)
    print(f"SYSTEM wallet ({wallet.currency}): {wallet.id}", file=out)
    return 0


async def _sign_up(
    settings: Settings, body: Signup, password_hash: bytes
) -> tuple[Organization, User, Wallet]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from ledger_core.acting import AuditContext
    from ledger_core.services.accounts import sign_up

    engine = create_async_engine(settings.sqlalchemy_url)
    try:
        return await sign_up(
            engine,
            AuditContext(user_agent="vaultcraft create-org"),
            email=body.email,
            password_hash=password_hash,
            full_name=body.full_name,
            organization_name=body.organization_name,
            default_currency=body.default_currency,
        )
    finally:
        await engine.dispose()


def reconcile(settings: Settings, *, full: bool, out: TextIO = sys.stdout) -> int:
    """Run a reconciliation in this process; 0 when clean, 1 on drift, 2 if the run failed."""
    from ledger_core.persistence.reconciliation.reports import render_measure
    from ledger_core.reconciliation import Mode
    from workers.reconciliation import reconcile_now

    mode = Mode.FULL if full else Mode.INCREMENTAL
    engine = create_engine(settings.sqlalchemy_url, pool_size=2)
    try:
        with ProgressLine() as progress:
            progress.step(f"Reconciling the ledger ({mode.value.lower()})")
            outcome = reconcile_now(engine, settings, mode)
    finally:
        engine.dispose()
    print(
        f"Reconciliation run {outcome.run_id} ({outcome.mode.value}): {outcome.status}"
        f" in {outcome.duration_s:.2f} s",
        file=out,
    )
    findings = outcome.findings
    if findings is None:
        print(f"The run failed: {outcome.error}", file=out)
        return EXIT_RUN_FAILED
    print(
        f"Checked {findings.wallets_checked} wallets and {findings.entries_checked} entries.",
        file=out,
    )
    found = findings.discrepancies
    if not found:
        print("The ledger is clean.", file=out)
        return 0
    counts = ", ".join(f"{n} {kind.value}" for kind, n in sorted(findings.counts_by_kind().items()))
    print(f"Ledger drift: {len(found)} discrepancies ({counts}).", file=out)
    for d in found[:SHOWN]:
        where = " ".join(
            f"{label}={value}"
            for label, value in (
                ("org", d.organization_id),
                ("wallet", d.wallet_id),
                ("transaction", d.transaction_id),
                ("settlement", d.settlement_id),
                ("entry", d.entry_id),
            )
            if value is not None
        )
        expected = render_measure(d.kind, d.expected, d.currency)
        actual = render_measure(d.kind, d.actual, d.currency)
        money = f" {d.currency}" if d.currency else ""
        print(f"  {d.kind.value}: {where}{money} expected {expected}, actual {actual}", file=out)
    if len(found) > SHOWN:
        print(f"  ... and {len(found) - SHOWN} more in the run's records.", file=out)
    return EXIT_DRIFT


def verify(settings: Settings, *, require_final: bool, out: TextIO = sys.stdout) -> int:
    """Check promises 1-5 of the ledger over the whole database, and every audit chain
    against its signed published head; 1 if anything is broken."""
    from ledger_core.persistence.reconciliation.invariants import check_invariants

    engine = create_engine(settings.sqlalchemy_url, pool_size=1)
    try:
        with ProgressLine() as progress, engine.connect() as conn:

            def show(number: int, total: int, kind: str) -> None:
                progress.step(f"[{number}/{total}] {kind}")

            violations = check_invariants(conn, require_final=require_final, progress=show)
            audit_ok = _verify_audit_chains(settings, conn, out)
    finally:
        engine.dispose()
    if not violations:
        print("The ledger keeps every promise: no violations.", file=out)
        return 0 if audit_ok else 1
    by_kind = Counter(v.kind for v in violations)
    print(
        f"{len(violations)} violations: "
        + ", ".join(f"{n} {kind}" for kind, n in sorted(by_kind.items())),
        file=out,
    )
    for violation in violations[:SHOWN]:
        print(f"  {violation}", file=out)
    if len(violations) > SHOWN:
        print(f"  ... and {len(violations) - SHOWN} more.", file=out)
    return 1


def _verify_audit_chains(settings: Settings, conn: Connection, out: TextIO) -> bool:
    import redis

    from ledger_core.audit_heads import TrustedKeys
    from messaging.broker import redis_url
    from runtime.audit_keys import trusted_keys
    from workers.audit_heads import check_anchors

    keys = TrustedKeys.of(trusted_keys(settings))
    with redis.Redis.from_url(redis_url(settings), socket_timeout=10) as client:
        findings, anchored = check_anchors(conn, client, keys)
    if not findings:
        print(f"Audit chains: intact; {anchored} match their signed heads.", file=out)
        return True
    print(f"Audit chains: {len(findings)} findings.", file=out)
    for finding in findings[:SHOWN]:
        print(f"  {finding}", file=out)
    return False
