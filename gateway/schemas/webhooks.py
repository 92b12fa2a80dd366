"""Models of the webhook, delivery and redelivery routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from gateway.pagination import PageQuery
from gateway.validation import BodyModel

EventTypeName = Literal[
    "transfer.completed",
    "transfer.failed",
    "transfer.cancelled",
    "transfer.held",
    "transfer.captured",
    "transfer.voided",
    "transfer.expired",
    "wallet.status_changed",
    "settlement.completed",
    "reconciliation.drift_detected",
]
DeliveryStatusName = Literal["PENDING", "SUCCEEDED", "FAILED"]


def _distinct(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise PydanticCustomError("duplicate_event", "each event type may be listed once")
    return values


WebhookUrl = Annotated[
    str,
    StringConstraints(min_length=8, max_length=2048),
    Field(examples=["https://hooks.example.com/vaultcraft"]),
]


class CreateWebhook(BodyModel):
    url: WebhookUrl = Field(
        description="https URL of a public endpoint (http and private addresses only when "
        "the operator sets VAULTCRAFT_ALLOW_PRIVATE_WEBHOOKS=1)"
    )
    events: EventTypes = Field(
        min_length=1, max_length=6, description="Event types to send to this endpoint"
    )


EventTypes = Annotated[list[EventTypeName], AfterValidator(_distinct)]


class UpdateWebhook(BodyModel):
    """Give only what changes (absent fields stay; `null` is refused); the secret stays."""

    url: WebhookUrl | None = Field(None, description="A new endpoint URL, checked as at creation")
    events: EventTypes | None = Field(
        None, min_length=1, max_length=6, description="The event types to send from now on"
    )
    is_active: bool | None = Field(
        None, description="`false` pauses deliveries to the endpoint; `true` resumes them"
    )

    @field_validator("url", "events", "is_active", mode="before")
    @classmethod
    def _absent_not_null(cls, value: object) -> object:
        if value is None:
            raise PydanticCustomError(
                "null_value", "leave the field out to keep it; null is refused"
            )
        return value


class WebhookOut(BaseModel):
    id: UUID
    organization_id: UUID
    url: str
    events: list[EventTypeName]
    is_active: bool
    created_at: datetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(
        description="Signing secret for VaultCraft-Signature; shown only in this response"
    )


class WebhookTestOut(BaseModel):
    event_id: UUID = Field(description="Id of the test event sent (it is not stored)")
    succeeded: bool = Field(description="The endpoint answered 2xx")
    status_code: int | None = Field(description="The endpoint's HTTP status, if it answered")
    error: str | None = Field(description="Why it did not succeed, if it did not")
    duration_ms: int


class ListEvents(PageQuery):
    type: EventTypeName | None = None
    resource_id: UUID | None = Field(
        None, description="Only events about this transfer, wallet, settlement or run"
    )


class EventOut(BaseModel):
    id: UUID = Field(description="The event's id: `POST /events/{id}/redeliver` sends it again")
    type: EventTypeName
    created_at: datetime
    organization_id: UUID
    data: dict[str, Any] = Field(description="The resource as the API shows it, at the event")


class ListDeliveries(PageQuery):
    status: DeliveryStatusName | None = None
    event_id: UUID | None = None


class AttemptOut(BaseModel):
    attempt: int
    status_code: int | None = Field(description="The endpoint's HTTP status; null if none")
    error: str | None
    duration_ms: int
    created_at: datetime


class DeliveryOut(BaseModel):
    id: UUID
    webhook_id: UUID
    event_id: UUID
    event_type: EventTypeName
    origin: Literal["RELAY", "REDELIVERY"]
    status: DeliveryStatusName
    attempt_count: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="When the next retry is due, if any")
    attempts: list[AttemptOut]
    created_at: datetime
    updated_at: datetime


class RedeliveryOut(BaseModel):
    event_id: UUID
    deliveries: list[DeliveryOut]
