"""Models of the audit trail routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from gateway.pagination import PageQuery

Action = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ListAuditLogs(PageQuery):
    action: Action | None = Field(None, examples=["wallet.status_changed"])
    actor_id: UUID | None = None
    resource_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    from_: AwareDatetime | None = Field(
        None, alias="from", description="Recorded at or after (RFC 3339 with offset)"
    )
    to: AwareDatetime | None = Field(None, description="Recorded before (RFC 3339 with offset)")


class AuditLogOut(BaseModel):
    id: int
    organization_id: UUID | None
    actor_id: UUID | None
    action: str
    resource_type: str | None
    resource_id: str | None
    client_address: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any]
    created_at: datetime
    chain_seq: int | None = Field(description="Place in the organization's hash chain once sealed")
    prev_hash: str | None
    hash: str | None


class BrokenLinkOut(BaseModel):
    id: int
    chain_seq: int
    expected_hash: str
    actual_hash: str


class AuditVerificationOut(BaseModel):
    verified: bool
    records_checked: int
    unsealed_records: int = Field(description="Records written but not yet sealed (seconds old)")
    first_broken: BrokenLinkOut | None
