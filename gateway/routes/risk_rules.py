"""Risk rules: an organization's admins set the limits its transfers are posted against."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from gateway.auth import acting, principal
from gateway.pagination import page_after, page_response
from gateway.registry import RouteTable
from gateway.responses import created, json_response, validation_problem
from gateway.schemas.common import Page
from gateway.schemas.risk_rules import CreateRiskRule, ListRiskRules, RiskRuleOut, UpdateRiskRule
from gateway.state import ENGINE
from ledger_core.risk import RuleKind
from ledger_core.services import risk
from ledger_core.services.risk import RuleDraft

routes = RouteTable(tag="Risk rules")

_NOT_NULL = ("window_seconds", "is_active")


@routes.post(
    "/risk-rules",
    body=CreateRiskRule,
    response=RiskRuleOut,
    status=201,
    errors=(403, 404),
    created_path="/risk-rules/{rule_id}",
)
async def create_risk_rule(request: web.Request, body: CreateRiskRule) -> web.Response:
    """Add a risk rule (admin)

    Checked when transfers are posted: a transfer that breaks an active rule ends
    `FAILED` with `failure_code: limit_exceeded` and the rule's id in `failure_message`.
    A `wallet_id` of another organization is `404`. Audited as `risk_rule.created`.
    """
    draft = RuleDraft(
        kind=RuleKind(body.kind),
        wallet_type=body.wallet_type,
        currency=body.currency,
        wallet_id=body.wallet_id,
        max_amount=body.max_amount,
        max_count=body.max_count,
        window_seconds=body.window_seconds,
    )
    rule = await risk.create_rule(request.app[ENGINE], acting(request), draft)
    return created(rule.as_json(), f"/risk-rules/{rule.rule.id}")


@routes.get("/risk-rules", query=ListRiskRules, response=Page[RiskRuleOut], errors=(403,))
async def get_risk_rules(request: web.Request, query: ListRiskRules) -> web.Response:
    """List the organization's risk rules, newest first (admin)

    Active and deactivated rules; filter with `is_active`, `kind`, `wallet_id`.
    """
    rules, next_key = await risk.rules_page(
        request.app[ENGINE],
        principal(request),
        kind=None if query.kind is None else RuleKind(query.kind),
        is_active=query.is_active,
        after=page_after(request, query),
        limit=query.limit,
    )
    return page_response(request, [r.as_json() for r in rules], next_key)


@routes.get("/risk-rules/{rule_id}", response=RiskRuleOut, errors=(403, 404))
async def get_risk_rule(request: web.Request, rule_id: UUID) -> web.Response:
    """Read a risk rule (admin)

    Another organization's rule is `404`.
    """
    rule = await risk.read_rule(request.app[ENGINE], principal(request), rule_id)
    return json_response(rule.as_json())


@routes.patch("/risk-rules/{rule_id}", body=UpdateRiskRule, response=RiskRuleOut, errors=(403, 404))
async def update_risk_rule(
    request: web.Request, rule_id: UUID, body: UpdateRiskRule
) -> web.Response:
    """Change a rule's limits or switch it on and off (admin)

    The kind and scope of a rule never change: add a new rule instead. Audited as
    `risk_rule.updated` with the rule before and after.
    """
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    for name in _NOT_NULL:
        if name in changes and changes[name] is None:
            raise validation_problem(name, f"{name} may not be null")
    rule = await risk.change_rule(request.app[ENGINE], acting(request), rule_id, changes)
    return json_response(rule.as_json())


@routes.delete("/risk-rules/{rule_id}", response=RiskRuleOut, errors=(403, 404))
async def delete_risk_rule(request: web.Request, rule_id: UUID) -> web.Response:
    """Deactivate a risk rule (admin)

    The rule stops applying at once and stays listed with `is_active: false`. Audited as
    `risk_rule.deleted`.
    """
    rule = await risk.deactivate_rule(request.app[ENGINE], acting(request), rule_id)
    return json_response(rule.as_json())
