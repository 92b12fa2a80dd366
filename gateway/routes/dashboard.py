"""The analytics page at `/dashboard`, and its files at `/dashboard/static/...`.

A static page: it signs in with `POST /api/v1/auth/login` (the token stays in the tab's
sessionStorage) and polls the `/api/v1/analytics/...` routes every few seconds. Chart.js
is vendored in `gateway/static/dashboard/vendor/`, so the page needs no outside host.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "dashboard"
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def dashboard_page(request: web.Request) -> web.FileResponse:
    """The page itself (public: it holds no data until the user signs in)."""
    return web.FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


def add_dashboard(app: web.Application) -> None:
    app.router.add_get("/dashboard", dashboard_page, name="dashboard")
    app.router.add_static("/dashboard/static", STATIC_DIR, name="dashboard_static")
