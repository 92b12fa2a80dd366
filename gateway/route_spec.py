"""What one declared route is: the router, the validator and the OpenAPI document read it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

API_PREFIX = "/api/v1"

Handler = Callable[..., Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class HeaderParam:
    """A request header an operation reads; documented as an OpenAPI header parameter."""

    name: str
    description: str
    example: str
    required: bool = True
    pattern: str | None = None
    max_length: int | None = None


@dataclass(frozen=True)
class RouteSpec:
    """One declared operation: everything the router, the validator and the docs need."""

    method: str
    path: str
    """Path relative to `API_PREFIX`, as in the API contract (`/wallets/{wallet_id}`)."""
    handler: Handler
    tag: str
    summary: str
    description: str = ""
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    """A pydantic model (or type) for the success body; None for no JSON body."""
    status: int = 200
    auth: bool = True
    errors: tuple[int, ...] = ()
    content_type: str = "application/json"
    also_csv: bool = False
    """The success body may also be `text/csv` (`?format=csv` or `Accept: text/csv`)."""
    optional_body: bool = False
    """With `body=`, a request without a body gets the model's defaults instead of a 422."""
    aliases: tuple[str, ...] = ()
    """Extra absolute paths served by the same handler (e.g. `/health` at the root)."""
    path_params: tuple[str, ...] = field(default=())
    headers: tuple[HeaderParam, ...] = ()
    """Request headers the handler reads, such as `Idempotency-Key`."""
    deprecated: bool = False
    """Kept for the contract; the description names the operation to use instead."""
    created_path: str = ""
    """For a 201/202: the path template its `Location` header points to."""
    scope: str = "admin"
    """The API key scope this route needs (users are limited by their role instead)."""

    @property
    def full_path(self) -> str:
        return API_PREFIX + self.path

    @property
    def operation_id(self) -> str:
        return self.handler.__name__
