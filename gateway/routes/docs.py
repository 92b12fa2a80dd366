"""The API's own description: `GET /openapi.json` and Swagger UI at `GET /docs`.

Swagger UI's assets come from the `swagger-ui-bundle` package and are served by the
gateway itself, so the docs work without internet access.
"""

from __future__ import annotations

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from gateway.openapi import build_openapi
from gateway.registry import API_PREFIX, RouteTable
from gateway.responses import json_response
from gateway.state import OPENAPI_CACHE, ROUTES

routes = RouteTable(tag="Operations")

ASSETS_PATH = "/docs/assets"

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>VaultCraft API</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script src="{assets}/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "{spec}",
      dom_id: "#swagger-ui",
      deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout"
    }});
  </script>
</body>
</html>
"""


@routes.get("/openapi.json", auth=False, aliases=("/openapi.json",))
async def openapi_document(request: web.Request) -> web.Response:
    """This API's OpenAPI 3.1 description

    This document: every operation with its parameters (including headers such as
    `Idempotency-Key`), bodies, examples and problem responses. Feed it to a client
    generator as is.
    """
    cache = request.app[OPENAPI_CACHE]
    if "document" not in cache:
        cache["document"] = build_openapi(request.app[ROUTES])
    return json_response(cache["document"])


@routes.get("/docs", auth=False, content_type="text/html", aliases=("/docs",))
async def swagger_ui(request: web.Request) -> web.Response:
    """Swagger UI for this API, served without any outside asset

    Try the API in a browser: authorize with a token from `POST /auth/login`, then "Try it
    out" on any operation.
    """
    page = _PAGE.format(assets=ASSETS_PATH, spec=f"{API_PREFIX}/openapi.json")
    return web.Response(text=page, content_type="text/html")


def add_assets(app: web.Application) -> None:
    """Serve Swagger UI's files from the installed package."""
    app.router.add_static(ASSETS_PATH, swagger_ui_path, name="swagger_ui_assets")
