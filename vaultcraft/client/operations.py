"""Cross-org and operator routes: counterparties, settlements, webhooks, reconciliations,
audit logs and risk rules (mostly admin)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

from vaultcraft.client.base import ClientBase
from vaultcraft.client.money import Amount, amount_text
from vaultcraft.client.types import (
    AuditLog,
    AuditVerification,
    Counterparty,
    CreatedWebhook,
    Delivery,
    Page,
    Reconciliation,
    ReconciliationReport,
    Redelivery,
    RiskRule,
    Settlement,
    SettlementRun,
    Webhook,
)


class OperationsMixin(ClientBase):
    # Counterparties and settlements

    def add_counterparty(self, organization_id: str) -> Counterparty:
        """Accept transfers from another organization (admin)."""
        body = {"organization_id": organization_id}
        return cast(Counterparty, self._call("POST", "/counterparties", json=body))

    def list_counterparties(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Counterparty]:
        return cast(Page[Counterparty], self._page("/counterparties", limit, cursor))

    def remove_counterparty(self, organization_id: str) -> None:
        self._call("DELETE", f"/counterparties/{organization_id}")

    def run_settlements(self) -> SettlementRun:
        """Net the clearing positions now (admin)."""
        return cast(SettlementRun, self._call("POST", "/settlements/run"))

    def list_settlements(
        self, *, limit: int | None = None, cursor: str | None = None, **filters: str
    ) -> Page[Settlement]:
        """Filters: `currency`, `payer_organization_id`, `payee_organization_id`."""
        return cast(Page[Settlement], self._page("/settlements", limit, cursor, filters))

    def iter_settlements(self, **filters: str) -> Iterator[Settlement]:
        return self._iter("/settlements", filters)

    def settlement(self, settlement_id: str) -> Settlement:
        return cast(Settlement, self._call("GET", f"/settlements/{settlement_id}"))

    # Webhooks

    def create_webhook(self, url: str, events: Sequence[str]) -> CreatedWebhook:
        """Register an endpoint (admin); keep the returned `secret`: it is shown only once."""
        body = {"url": url, "events": list(events)}
        return cast(CreatedWebhook, self._call("POST", "/webhooks", json=body))

    def list_webhooks(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Webhook]:
        return cast(Page[Webhook], self._page("/webhooks", limit, cursor))

    def delete_webhook(self, webhook_id: str) -> None:
        self._call("DELETE", f"/webhooks/{webhook_id}")

    def list_deliveries(
        self,
        webhook_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        **filters: str,
    ) -> Page[Delivery]:
        """Filters: `status`, `event_id`."""
        path = f"/webhooks/{webhook_id}/deliveries"
        return cast(Page[Delivery], self._page(path, limit, cursor, filters))

    def iter_deliveries(self, webhook_id: str, **filters: str) -> Iterator[Delivery]:
        return self._iter(f"/webhooks/{webhook_id}/deliveries", filters)

    def redeliver(self, event_id: str) -> Redelivery:
        return cast(Redelivery, self._call("POST", f"/events/{event_id}/redeliver"))

    # Reconciliation and audit

    def request_reconciliation(self, mode: str = "FULL") -> Reconciliation:
        """Queue a run (admin); poll `reconciliation(id)` until COMPLETED or FAILED."""
        body = {"mode": mode}
        return cast(Reconciliation, self._call("POST", "/reconciliations", json=body))

    def list_reconciliations(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Reconciliation]:
        return cast(Page[Reconciliation], self._page("/reconciliations", limit, cursor))

    def reconciliation(self, reconciliation_id: str) -> ReconciliationReport:
        path = f"/reconciliations/{reconciliation_id}"
        return cast(ReconciliationReport, self._call("GET", path))

    def list_audit_logs(
        self, *, limit: int | None = None, cursor: str | None = None, **filters: str
    ) -> Page[AuditLog]:
        """Newest first (admin). Filters: `action`, `actor_id`, `resource_id`, `from`, `to`."""
        return cast(Page[AuditLog], self._page("/audit-logs", limit, cursor, filters))

    def iter_audit_logs(self, **filters: str) -> Iterator[AuditLog]:
        return self._iter("/audit-logs", filters)

    def verify_audit_chain(self) -> AuditVerification:
        return cast(AuditVerification, self._call("GET", "/audit-logs/verify"))

    # Risk rules

    def create_risk_rule(
        self, kind: str, *, max_amount: Amount | None = None, **scope: Any
    ) -> RiskRule:
        """`MAX_AMOUNT`, `WINDOW_DEBITS` or `BLOCKED_WALLET`, scoped by `wallet_type`,
        `currency`, `wallet_id`; `max_count`, `window_seconds` as the kind needs (admin)."""
        body = {"kind": kind, **scope}
        if max_amount is not None:
            body["max_amount"] = amount_text(max_amount)
        return cast(RiskRule, self._call("POST", "/risk-rules", json=body))

    def list_risk_rules(
        self, *, limit: int | None = None, cursor: str | None = None, **filters: str
    ) -> Page[RiskRule]:
        """Filters: `kind`, `is_active`."""
        return cast(Page[RiskRule], self._page("/risk-rules", limit, cursor, filters))

    def risk_rule(self, rule_id: str) -> RiskRule:
        return cast(RiskRule, self._call("GET", f"/risk-rules/{rule_id}"))

    def update_risk_rule(self, rule_id: str, **changes: Any) -> RiskRule:
        """Change `max_amount`, `max_count`, `window_seconds` or `is_active`."""
        if "max_amount" in changes and changes["max_amount"] is not None:
            changes["max_amount"] = amount_text(changes["max_amount"])
        return cast(RiskRule, self._call("PATCH", f"/risk-rules/{rule_id}", json=changes))

    def delete_risk_rule(self, rule_id: str) -> RiskRule:
        return cast(RiskRule, self._call("DELETE", f"/risk-rules/{rule_id}"))
