"""Models of the API key routes."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from gateway.pagination import PageQuery
from gateway.schemas.common import Name
from gateway.validation import BodyModel
from ledger_core.api_keys import Scope


class CreateApiKey(BodyModel):
    name: Name
    scopes: list[Scope] = Field(min_length=1, max_length=6)
    expires_at: AwareDatetime | None = None
    rate_limit_per_s: int | None = Field(
        None, ge=1, le=1_000_000, description="This key's own limit, besides its organization's"
    )
    rate_limit_burst: int | None = Field(
        None, ge=1, le=10_000_000, description="Defaults to `rate_limit_per_s`"
    )

    @model_validator(mode="after")
    def _burst_needs_rate(self) -> CreateApiKey:
        if self.rate_limit_burst is not None and self.rate_limit_per_s is None:
            raise ValueError("rate_limit_burst needs rate_limit_per_s")
        return self


class ListApiKeys(PageQuery):
    pass


class ApiKeyOut(BaseModel):
    id: UUID
    name: str
    scopes: list[Scope]
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    rate_limit_per_s: int | None
    rate_limit_burst: int | None


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(description="The whole key, `vk_...`: shown only in this answer")
