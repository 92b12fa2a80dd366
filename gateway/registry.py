"""Routes are declared once; the declaration validates requests and writes the OpenAPI doc.

How to add a route
------------------
1. Put request/response models in `gateway/schemas/<area>.py`. Request bodies subclass
   `gateway.validation.BodyModel` (strict, unknown fields refused); query strings subclass
   `QueryModel`, or `gateway.pagination.PageQuery` for lists. Use the shared field types
   of `gateway.schemas.common` (`Amount`, `Currency`, `Name`, ...).
2. In `gateway/routes/<area>.py`, make one table and decorate handlers::

       routes = RouteTable(tag="Wallets")

       @routes.patch(
           "/wallets/{wallet_id}",          # under /api/v1; path params are UUIDs
           body=UpdateWallet,               # -> handler gets `body: UpdateWallet`
           response=WalletOut,              # documented success body
           summary="Change a wallet's status (admin)",
           errors=(403, 404, 409),          # problem responses besides the automatic ones
       )
       async def update_wallet(
           request: web.Request, wallet_id: UUID, body: UpdateWallet
       ) -> web.Response:
           who = principal(request)         # the caller, already authenticated
           ...                              # call ledger_core; raise DomainError/Problem
           return json_response(wallet.as_json())

   A `query=` model arrives as `query`, path params by name as `UUID`s. Routes need a
   bearer token unless declared `auth=False`. Add `status=201`/`202` for creations.
3. Register the table in `gateway/app.py` (`ROUTE_TABLES`). `GET /openapi.json` then
   lists the route with its parameters, body, responses and security; nothing else to edit.

4. Test it over HTTP with the `client` fixture and `tests/support/api.py` (`signup`,
   `add_user`, `create_wallet`, `expect_problem`); cover another org's ids (404) and a
   member's reach (403).

Errors: raise `ledger_core.errors.DomainError` subclasses or `gateway.responses.Problem`;
never build error responses by hand. 401 (auth), 422 (body/query/path), 413 (body),
415 (body) and 503 are documented automatically.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from aiohttp import web
from structlog.contextvars import bind_contextvars

from gateway.auth import authenticate
from gateway.rate_limit import enforce_rate_limit
from gateway.responses import Problem, field_error
from gateway.route_spec import API_PREFIX as API_PREFIX
from gateway.route_spec import Handler as Handler
from gateway.route_spec import RouteSpec as RouteSpec
from gateway.state import PRINCIPAL, ROUTES
from gateway.validation import NoBody, parse_body, parse_query
from ledger_core.api_keys import require_scope

_PATH_PARAM = re.compile(r"{(\w+)}")


class RouteTable:
    """The routes of one API area, declared with `get`/`post`/`patch`/`delete`/`put`.

    `read_scope` (GET) and `write_scope` (other methods) are the API key scopes its routes
    need unless a route says `scope=`; an area that names none is for `admin` keys.
    """

    def __init__(self, tag: str, read_scope: str = "admin", write_scope: str = "admin") -> None:
        self.tag = tag
        self.read_scope = read_scope
        self.write_scope = write_scope
        self.specs: list[RouteSpec] = []

    def route(self, method: str, path: str, **options: Any) -> Callable[[Handler], Handler]:
        def declare(handler: Handler) -> Handler:
            doc = (inspect.getdoc(handler) or handler.__name__).split("\n", 1)
            default_scope = self.read_scope if method == "GET" else self.write_scope
            spec = RouteSpec(
                method=method,
                path=path,
                handler=handler,
                tag=options.pop("tag", self.tag),
                summary=options.pop("summary", doc[0]),
                description=options.pop("description", doc[1].strip() if len(doc) > 1 else ""),
                path_params=tuple(_PATH_PARAM.findall(path)),
                scope=options.pop("scope", default_scope),
                **options,
            )
            _check_signature(spec)
            self.specs.append(spec)
            return handler

        return declare

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **options)

    def register(self, app: web.Application) -> None:
        """Add every route of this table to `app` and to its list of documented routes."""
        for spec in self.specs:
            endpoint = _endpoint(spec)
            for path in (spec.full_path, *spec.aliases):
                app.router.add_route(spec.method, path, endpoint, name=None)
            app[ROUTES].append(spec)


def _check_signature(spec: RouteSpec) -> None:
    """Fail at import, not at request time, when a handler cannot take what it declares."""
    wanted = set(spec.path_params)
    if spec.body is not None:
        wanted.add("body")
    if spec.query is not None:
        wanted.add("query")
    accepted = set(list(inspect.signature(spec.handler).parameters)[1:])
    if wanted != accepted:
        raise TypeError(
            f"{spec.handler.__name__} must take (request, {', '.join(sorted(wanted))}), "
            f"takes (request, {', '.join(sorted(accepted))})"
        )


def _endpoint(spec: RouteSpec) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        if spec.auth:
            who = request[PRINCIPAL] = await authenticate(request)
            bind_contextvars(organization_id=str(who.organization_id), user_id=str(who.user_id))
            if who.key_id is not None:
                bind_contextvars(api_key_id=str(who.key_id))
            require_scope(who.scopes, spec.scope)
            await enforce_rate_limit(request, who)
        kwargs: dict[str, Any] = {}
        for name in spec.path_params:
            kwargs[name] = _uuid_param(name, request.match_info[name])
            bind_contextvars(**{name: str(kwargs[name])})  # ids in the request's log lines
        if spec.query is not None:
            kwargs["query"] = parse_query(request, spec.query)
        if spec.body is not None:
            if spec.optional_body and not request.body_exists:
                kwargs["body"] = spec.body()
            else:
                kwargs["body"] = await parse_body(request, spec.body)
        elif spec.method != "GET" and request.body_exists:
            await parse_body(request, NoBody)  # `{}` at most: no field goes unread
        return await spec.handler(request, **kwargs)

    endpoint.__name__ = spec.operation_id
    return endpoint


def _uuid_param(name: str, raw: str) -> UUID:
    try:
        if len(raw) > 64:
            raise ValueError
        return UUID(raw)
    except ValueError:
        raise Problem(
            422,
            "validation_error",
            f"{name} must be a UUID",
            errors=[field_error(name, "must be a UUID")],
        ) from None
