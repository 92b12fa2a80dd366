"""Risk rules: per-organization limits checked when a transfer is posted.

Pure logic, no I/O. A rule applies to a transfer's *source* wallet (the one it debits)
when the wallet matches the rule's scope (wallet type, currency, one wallet: each
optional). Kinds:

- `MAX_AMOUNT`: no single transfer above `max_amount`;
- `WINDOW_DEBITS`: over any rolling `window_seconds`, a wallet's debits stay within
  `max_amount` in total and/or `max_count` in number;
- `BLOCKED_WALLET`: `wallet_id` may neither send nor receive.

`RulePolicy` implements `ledger_core.posting.RiskPolicy`. The persistence layer loads the
active rules and, for window rules, each wallet's usage so far, inside the posting
transaction after the wallets are locked; the policy then adds each transfer it lets
through, so later transfers of the same batch see it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

from ledger_core.errors import DomainError
from ledger_core.money import format_amount
from ledger_core.posting import PendingTransfer, Refusal, WalletState

LIMIT_EXCEEDED = "limit_exceeded"
MAX_WINDOW_SECONDS = 31 * 24 * 3600
"""Longest rolling window: a month. Longer limits belong to a statement, not to posting."""
RULE_WALLET_TYPES = frozenset({"PRIMARY", "BONUS", "SYSTEM"})
"""Types a rule may scope to; CLEARING wallets are moved by the ledger, never the source."""


class RuleKind(StrEnum):
    MAX_AMOUNT = "MAX_AMOUNT"
    WINDOW_DEBITS = "WINDOW_DEBITS"
    BLOCKED_WALLET = "BLOCKED_WALLET"


@dataclass(frozen=True, slots=True)
class RiskRule:
    id: UUID
    organization_id: UUID
    kind: RuleKind
    wallet_type: str | None = None
    currency: str | None = None
    wallet_id: UUID | None = None
    max_amount: int | None = None
    max_count: int | None = None
    window_seconds: int | None = None

    def scopes(self, wallet: WalletState, currency: str) -> bool:
        """Whether a debit of `wallet` in `currency` falls under this rule."""
        return (
            wallet.organization_id == self.organization_id
            and (self.wallet_type is None or wallet.type == self.wallet_type)
            and (self.currency is None or currency == self.currency)
            and (self.wallet_id is None or wallet.id == self.wallet_id)
        )


class InvalidRule(DomainError):
    code = "validation_error"


def check_rule_shape(rule: RiskRule) -> None:
    """Refuse a rule whose fields do not fit its kind (`422`), naming the field."""
    if rule.wallet_type is not None and rule.wallet_type not in RULE_WALLET_TYPES:
        raise InvalidRule("rules scope PRIMARY, BONUS or SYSTEM wallets", field="wallet_type")
    if rule.kind is RuleKind.BLOCKED_WALLET:
        if rule.wallet_id is None:
            raise InvalidRule("a BLOCKED_WALLET rule names its wallet", field="wallet_id")
        for name in ("wallet_type", "currency", "max_amount", "max_count", "window_seconds"):
            if getattr(rule, name) is not None:
                raise InvalidRule(f"a BLOCKED_WALLET rule takes no {name}", field=name)
        return
    if rule.max_amount is not None and rule.currency is None:
        raise InvalidRule("an amount limit needs its currency", field="currency")
    if rule.kind is RuleKind.MAX_AMOUNT:
        if rule.max_amount is None:
            raise InvalidRule("a MAX_AMOUNT rule needs max_amount", field="max_amount")
        for name in ("max_count", "window_seconds"):
            if getattr(rule, name) is not None:
                raise InvalidRule(f"a MAX_AMOUNT rule takes no {name}", field=name)
        return
    if rule.window_seconds is None or not 0 < rule.window_seconds <= MAX_WINDOW_SECONDS:
        raise InvalidRule(
            f"window_seconds must be between 1 and {MAX_WINDOW_SECONDS}", field="window_seconds"
        )
    if rule.max_amount is None and rule.max_count is None:
        raise InvalidRule(
            "a WINDOW_DEBITS rule needs max_amount, max_count or both", field="max_count"
        )


def rule_view(rule: RiskRule) -> dict[str, Any]:
    """The rule's JSON fields (amounts as decimal strings in the rule's currency)."""
    amount = rule.max_amount
    return {
        "id": str(rule.id),
        "organization_id": str(rule.organization_id),
        "kind": rule.kind.value,
        "wallet_type": rule.wallet_type,
        "currency": rule.currency,
        "wallet_id": None if rule.wallet_id is None else str(rule.wallet_id),
        "max_amount": None
        if amount is None or rule.currency is None
        else format_amount(amount, rule.currency),
        "max_count": rule.max_count,
        "window_seconds": rule.window_seconds,
    }


def with_changes(rule: RiskRule, changes: Mapping[str, Any]) -> RiskRule:
    """The rule with some limits changed, checked again as a whole."""
    changed = dataclasses.replace(rule, **changes)
    check_rule_shape(changed)
    return changed


@dataclass(slots=True)
class WindowUsage:
    """A wallet's debits inside one rule's rolling window, as far as posting has seen."""

    amount: int = 0
    count: int = 0


UsageKey = tuple[UUID, int]
"""(wallet id, window seconds): rules with the same window share a wallet's usage."""


def windows_to_load(
    rules: Sequence[RiskRule],
    transfers: Iterable[PendingTransfer],
    wallets: Mapping[UUID, WalletState],
) -> set[UsageKey]:
    """The (wallet, window) usages a batch needs: source wallets under a window rule."""
    window_rules = [r for r in rules if r.kind is RuleKind.WINDOW_DEBITS]
    needed: set[UsageKey] = set()
    if not window_rules:
        return needed
    for transfer in (unit for t in transfers for unit in t.units()):
        source = wallets.get(transfer.source_wallet_id)
        if source is None:
            continue
        for rule in window_rules:
            if rule.window_seconds is not None and rule.scopes(source, transfer.currency):
                needed.add((source.id, rule.window_seconds))
    return needed


class RulePolicy:
    """Applies an organization's rules to each transfer of a batch, in order."""

    def __init__(self, rules: Sequence[RiskRule], usage: Mapping[UsageKey, WindowUsage]) -> None:
        self._blocked = {r.wallet_id: r for r in rules if r.kind is RuleKind.BLOCKED_WALLET}
        self._limits = [r for r in rules if r.kind is not RuleKind.BLOCKED_WALLET]
        self._usage: dict[UUID, dict[int, WindowUsage]] = {}
        for (wallet_id, window), used in usage.items():
            self._usage.setdefault(wallet_id, {})[window] = WindowUsage(used.amount, used.count)
        self._journal: list[PendingTransfer] = []

    def check(
        self, transfer: PendingTransfer, wallets: Mapping[UUID, WalletState]
    ) -> Refusal | None:
        for wallet_id in (transfer.source_wallet_id, transfer.destination_wallet_id):
            blocked = self._blocked.get(wallet_id)
            if blocked is not None:
                return _refusal(blocked, f"wallet {wallet_id} is blocked")
        source = wallets[transfer.source_wallet_id]
        for rule in self._limits:
            if rule.scopes(source, transfer.currency):
                broken = self._breach(rule, transfer)
                if broken is not None:
                    return _refusal(rule, broken)
        return None

    def _breach(self, rule: RiskRule, transfer: PendingTransfer) -> str | None:
        amount = transfer.amount
        if rule.kind is RuleKind.MAX_AMOUNT:
            assert rule.max_amount is not None  # checked by check_rule_shape
            if amount > rule.max_amount:
                return f"amount is above the limit of {_money(rule.max_amount, transfer.currency)} per transfer"
            return None
        assert rule.window_seconds is not None
        windows = self._usage.get(transfer.source_wallet_id, {})
        used = windows.get(rule.window_seconds)
        if used is None:
            raise RuntimeError(f"usage of wallet {transfer.source_wallet_id} was not loaded")
        if rule.max_count is not None and used.count + 1 > rule.max_count:
            return f"wallet already made {used.count} debits of at most {rule.max_count} in {rule.window_seconds} s"
        if rule.max_amount is not None and used.amount + amount > rule.max_amount:
            return (
                f"debits would reach {_money(used.amount + amount, transfer.currency)}, above the "
                f"limit of {_money(rule.max_amount, transfer.currency)} in {rule.window_seconds} s"
            )
        return None

    def record(self, transfer: PendingTransfer) -> None:
        self._journal.append(transfer)
        for used in self._usage.get(transfer.source_wallet_id, {}).values():
            used.amount += transfer.amount
            used.count += 1

    def savepoint(self) -> object:
        """How far the journal of recorded transfers goes: cheap, taken for every group."""
        return len(self._journal)

    def rollback(self, savepoint: object) -> None:
        assert isinstance(savepoint, int)
        while len(self._journal) > savepoint:
            transfer = self._journal.pop()
            for used in self._usage.get(transfer.source_wallet_id, {}).values():
                used.amount -= transfer.amount
                used.count -= 1


def _refusal(rule: RiskRule, reason: str) -> Refusal:
    return Refusal(LIMIT_EXCEEDED, f"risk rule {rule.id} ({rule.kind.value}): {reason}")


def _money(minor: int, currency: str) -> str:
    return f"{format_amount(minor, currency)} {currency}"
