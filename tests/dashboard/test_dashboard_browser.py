"""The /dashboard page in headless Chromium: sign in, charts drawn from real transfers,
the transfers explorer (entries, events, webhook deliveries, cancel), and a wallet's
history (balance chart, statement, CSV download).

The screenshots are saved to `test-artifacts/dashboard.png` and `wallet-history.png`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import Engine

from runtime.settings import Settings
from tests.dashboard.browser import CHROMIUM_ARGS, ensure_chromium
from tests.risk.support import drain
from tests.support.api import API, PASSWORD
from tests.support.ledger_sql import cancel_transfer, pending_transfer, post_transfer
from tests.support.live_server import LiveGateway

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


_OVERFLOW = """() => {
    const edge = document.documentElement.clientWidth;
    return [...document.querySelectorAll('.card, canvas, table')]
        .filter((el) => el.offsetParent !== null)
        .filter((el) => el.getBoundingClientRect().right > edge + 0.5
            || el.scrollWidth > el.clientWidth + 1)
        .map((el) => el.id || el.className || el.tagName);
}"""
"""Visible cards, charts and tables that stick out of the page or are clipped inside."""


Explored = tuple[int, tuple[str, str], list[str], list[str]]
HOOK_URL = "http://127.0.0.1:9/vaultcraft-hooks"


def _explore_and_cancel(page: Any, redeliver: Callable[[str], None]) -> Explored:
    """In the explorer: list PENDING transfers, open one, cancel it, read its events; once
    its cancellation event is redelivered, open it by id and read its webhook deliveries."""
    page.select_option("#explore-status", "PENDING")
    page.click("#explore-search")
    page.wait_for_selector("#explore-results tbody tr")
    rows = page.locator("#explore-results tbody tr").count()
    page.locator("#explore-results tbody tr").first.click()
    page.wait_for_selector("#detail-title[data-status]")
    before = page.get_attribute("#detail-title", "data-status") or ""
    page.click("#detail-cancel")
    page.wait_for_selector("#detail-title[data-status='CANCELLED']")
    after = page.get_attribute("#detail-title", "data-status") or ""
    events = page.locator("#detail-events li").all_text_contents()
    transfer_id = (page.text_content("#detail-title") or "").split(" · ")[0]
    redeliver(transfer_id)
    page.fill("#explore-id", transfer_id)
    page.click("#explore-search")
    page.wait_for_selector(f"#explore-results tbody tr[data-id='{transfer_id}']")
    page.locator("#explore-results tbody tr").first.click()
    page.wait_for_selector("#detail-deliveries tbody tr")
    deliveries = [
        " | ".join(row.locator("td").all_inner_texts())
        for row in page.locator("#detail-deliveries tbody tr").all()
    ]
    page.fill("#explore-id", "")
    key = page.locator("#explore-results tbody tr").first.locator("td").nth(2).inner_text()
    page.select_option("#explore-status", "")
    page.fill("#explore-key", key)
    page.click("#explore-search")
    page.wait_for_selector("#explore-results tbody tr:only-child")
    assert page.locator("#explore-results tbody tr td").nth(2).inner_text() == key
    page.locator(".explorer").screenshot(path=str(ARTIFACTS / "dashboard-explorer.png"))
    return rows, (before, after), events, deliveries


@pytest.fixture(scope="module")
def chromium() -> str:
    return ensure_chromium()


@pytest.fixture
def gateway(api_settings: Settings) -> Iterator[str]:
    settings = dataclasses.replace(api_settings, allow_private_webhooks=True)  # HOOK_URL
    with LiveGateway(settings) as base_url:
        yield base_url


def _signup(http: httpx.Client, email: str, organization: str) -> tuple[dict[str, str], Any]:
    """A new organization's admin headers and its SYSTEM wallet."""
    signed = http.post(
        "/auth/signup",
        json={
            "email": email,
            "password": PASSWORD,
            "full_name": "Dana Admin",
            "organization_name": organization,
        },
    ).json()
    headers = {"Authorization": f"Bearer {signed['access_token']}"}
    system = http.get("/wallets", params={"type": "SYSTEM"}, headers=headers).json()["data"][0]
    return headers, system


def _ledger(base_url: str, engine: Engine) -> tuple[str, dict[str, str], list[Any]]:
    """An organization with real postings: deposits, payments, a limit, failures, a backlog,
    and a webhook endpoint for transfer events."""
    email = f"dash-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=base_url + API, timeout=10) as http:
        headers, system = _signup(http, email, "Northwind Payments")
        names = ["Payroll", "Treasury", "Marketplace", "Refunds", "Ops"]
        wallets = [
            http.post("/wallets", json={"type": "PRIMARY", "name": n}, headers=headers).json()["id"]
            for n in names
        ]
        rule = {
            "kind": "MAX_AMOUNT",
            "wallet_type": "PRIMARY",
            "currency": "INR",
            "max_amount": "900",
        }
        assert http.post("/risk-rules", json=rule, headers=headers).status_code == 201
        hook = {"url": HOOK_URL, "events": ["transfer.cancelled", "transfer.completed"]}
        assert http.post("/webhooks", json=hook, headers=headers).status_code == 201
    for n, wallet in enumerate(wallets):
        post_transfer(engine, system["id"], wallet, 200_000 * (n + 1))
    for n in range(40):
        source, target = wallets[n % 5], wallets[(n * 3 + 1) % 5]
        if source != target:
            pending_transfer(engine, source, target, 1_000 + (n * 7919) % 120_000)
    pending_transfer(engine, wallets[0], wallets[1], 5_000_000)
    drain(engine)
    cancel_transfer(engine, pending_transfer(engine, wallets[2], wallets[3], 500))
    waiting = [pending_transfer(engine, wallets[4], wallets[0], 700 + n) for n in range(3)]
    return email, headers, waiting


def _redeliverer(base_url: str, headers: dict[str, str]) -> Callable[[str], None]:
    """Send a transfer's cancellation event to the organization's endpoints again (through
    the API): a delivery the explorer must then show."""

    def redeliver(transfer_id: str) -> None:
        with httpx.Client(base_url=base_url + API, timeout=10, headers=headers) as http:
            events = http.get("/events", params={"resource_id": transfer_id}).json()["data"]
            (cancelled,) = [e for e in events if e["type"] == "transfer.cancelled"]
            assert http.post(f"/events/{cancelled['id']}/redeliver").status_code == 202

    return redeliver


def test_dashboard_signs_in_and_charts_real_transfers(
    chromium: str, gateway: str, engine: Engine
) -> None:
    from playwright.sync_api import sync_playwright

    email, admin_headers, waiting = _ledger(gateway, engine)
    fetched: dict[str, Any] = {}
    outside: list[str] = []
    host = urlsplit(gateway).netloc
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})

            def keep(response: Any) -> None:
                path = urlsplit(response.url).path
                if path.startswith(f"{API}/analytics/") and response.ok:
                    fetched[path.rsplit("/", 1)[-1]] = response.json()

            page.on("response", keep)
            page.on(
                "request",
                lambda req: outside.append(req.url) if urlsplit(req.url).netloc != host else None,
            )
            page.goto(f"{gateway}/dashboard")
            page.fill("#email", email)
            page.fill("#password", PASSWORD)
            page.click("#login-button")
            page.wait_for_selector("body[data-ready='true']", timeout=20_000)
            page.wait_for_timeout(800)  # let the charts' short animation finish
            charts = page.evaluate(
                """() => Object.fromEntries(Object.entries(window.dashboardState.charts).map(
                    ([id, c]) => [id, c.data.datasets.map((d) => d.data.reduce(
                        (a, v) => a + Number(v || 0), 0))]))"""
            )
            canvases = page.locator("canvas").count()
            org_name = page.text_content("#org-name")
            backlog = page.text_content("#kpi-backlog")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            overflow = {}
            for width in (1280, 1440):
                page.set_viewport_size({"width": width, "height": 1000})
                page.wait_for_timeout(400)  # charts resize on the next frame
                overflow[width] = page.evaluate(_OVERFLOW)
                page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}.png"), full_page=True)
            explored = _explore_and_cancel(page, _redeliverer(gateway, admin_headers))
            browser.close()
    finally:
        for tx_id in waiting:
            cancel_transfer(engine, tx_id)

    assert not outside, f"the page reached outside the gateway: {outside}"
    assert overflow == {1280: [], 1440: []}, "cards cut off at the right edge"
    pending_rows, statuses_after, events, deliveries = explored
    assert pending_rows == len(waiting) == 3
    assert statuses_after == ("PENDING", "CANCELLED")
    assert any("transfer.cancelled" in line for line in events), events
    (delivery,) = [line.split(" | ") for line in deliveries]
    assert delivery[:5] == ["transfer.cancelled", HOOK_URL, "PENDING", "0", ""], delivery
    assert delivery[5], "a pending delivery shows when it is due"
    assert org_name == "Northwind Payments"
    assert backlog == "3"
    assert canvases == 7  # the wallet view's chart is drawn when a wallet is shown
    assert set(charts) == {
        "chart-volume",
        "chart-outcomes",
        "chart-status",
        "chart-failures",
        "chart-top",
        "chart-balances",
    }
    for chart_id in ("chart-volume", "chart-status", "chart-top", "chart-failures"):
        assert sum(charts[chart_id]) > 0, (chart_id, charts[chart_id])
    assert {"volume", "statuses", "top-wallets", "balances", "backlog"} <= set(fetched)
    statuses = fetched["statuses"]["data"][0]
    assert statuses["by_status"]["COMPLETED"]["count"] > 5
    codes = {f["code"] for f in statuses["failures"]}
    assert "limit_exceeded" in codes
    assert len(fetched["top-wallets"]["data"][0]["wallets"]) == 6
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def test_wallet_view_charts_the_balance_and_downloads_the_statement(
    chromium: str, gateway: str, engine: Engine
) -> None:
    from playwright.sync_api import sync_playwright

    email = f"wallet-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=gateway + API, timeout=10) as http:
        headers, system = _signup(http, email, "Contoso Ledger")
        wallet = http.post(
            "/wallets", json={"type": "PRIMARY", "name": "Escrow"}, headers=headers
        ).json()
    moves = [50_000, -12_000, 30_000, -8_000, 1_500]
    for amount in moves:
        if amount > 0:
            post_transfer(engine, system["id"], wallet["id"], amount)
        else:
            post_transfer(engine, wallet["id"], system["id"], -amount)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1400}, accept_downloads=True)
        page.goto(f"{gateway}/dashboard")
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        page.click("#login-button")
        page.wait_for_selector("body[data-ready='true']", timeout=20_000)
        page.select_option("#wallet", wallet["id"])
        page.click("#wallet-show")
        page.wait_for_selector("body[data-wallet-ready='true']", timeout=20_000)
        page.wait_for_timeout(500)
        points = page.evaluate(
            "() => window.dashboardState.charts['chart-wallet'].data.datasets[0].data"
        )
        rows = page.locator("#statement tbody tr").count()
        summary = page.text_content("#wallet-summary") or ""
        with page.expect_download() as download:
            page.click("#wallet-csv")
        saved = Path(download.value.path()).read_text()
        filename = download.value.suggested_filename
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "wallet-history.png"), full_page=True)
        browser.close()

    running = [sum(moves[: n + 1]) / 100 for n in range(len(moves))]
    assert points == [0, *running]
    assert rows == len(moves)
    assert "closing 615" in summary.replace(",", "")
    header, *lines = list(csv.reader(io.StringIO(saved)))
    assert header[0] == "id" and "balance_after" in header
    assert [line[header.index("balance_after")] for line in lines] == [f"{v:.2f}" for v in running]
    assert filename == f"statement-{wallet['id']}.csv"
