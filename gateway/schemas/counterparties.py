"""Models of the counterparty routes."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from gateway.pagination import PageQuery
from gateway.validation import BodyModel


class AddCounterparty(BodyModel):
    organization_id: UUID = Field(
        description="The organization whose transfers this organization will accept"
    )


class ListCounterparties(PageQuery):
    pass


class CounterpartyOut(BaseModel):
    organization_id: UUID = Field(description="The organization transfers are accepted from")
    created_by: UUID | None
    created_at: datetime
