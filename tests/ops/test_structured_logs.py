"""Every process of a running stack writes one JSON object per line, with the ids that
let an operator follow a request or a transfer across processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.stack import JWT_SECRET, Stack
from tests.support.stack_api import PASSWORD, signup

PROCESSES = ("gateway", "worker", "relay", "scheduler")


def json_lines(stack: Stack, name: str) -> list[dict[str, Any]]:
    """Each line of the process's log, parsed; a line that is not a JSON object fails."""
    lines = []
    for number, line in enumerate(stack.logs(name).splitlines(), start=1):
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"{name}.log line {number} is not JSON: {line[:300]}") from None
        assert isinstance(parsed, dict), line
        lines.append(parsed)
    return lines


def test_logs_are_json_lines_carrying_request_and_transfer_ids(
    own_database: str, redis_url: str, tmp_path: Path
) -> None:
    # Given a running stack, a transfer that completes and one that fails
    with Stack(own_database, redis_url, tmp_path, scheduler=True) as stack:
        with httpx.Client(base_url=stack.base_url, timeout=40) as http:
            t = signup(http)
            alice, bob = t.wallet(), t.wallet()
            funding = t.deposit(alice, "20.00")
            resp = http.post(
                "/api/v1/transactions/transfer",
                json={"source_wallet_id": alice, "destination_wallet_id": bob,
                      "amount": "99.00", "currency": "USD"},
                headers={**t.headers, "Idempotency-Key": "logs-test-refused",
                         "X-Request-ID": "req-logs-refused"},
            )  # fmt: skip
            assert resp.status_code == 202, resp.text
            refused = resp.json()["id"]
            assert t.wait_final(refused)["status"] == "FAILED"

    # Then every line of every process is a JSON object with the common fields
    logs = {name: json_lines(stack, name) for name in PROCESSES}
    for name, lines in logs.items():
        assert lines, f"{name} logged nothing"
        for line in lines:
            assert {"timestamp", "level", "event", "logger"} <= line.keys(), line
            assert line["process"] == name, line
            assert line["timestamp"].endswith("Z")

    # and the gateway's line for the refused transfer names its request, caller and transfer
    [access] = [
        line
        for line in logs["gateway"]
        if line.get("request_id") == "req-logs-refused" and line["event"] == "Request answered."
    ]
    assert (access["method"], access["route"], access["status"]) == (
        "POST",
        "/api/v1/transactions/transfer",
        202,
    )
    assert (access["transaction_id"], access["organization_id"]) == (refused, t.organization_id)
    assert access["duration_ms"] >= 0
    # and every request line has a request id of its own
    answered = [line for line in logs["gateway"] if line["event"] == "Request answered."]
    assert all(line.get("request_id") for line in answered)
    assert len({line["request_id"] for line in answered}) == len(answered)

    # and the worker names the transfers it posted, and why one failed
    posted = [set(line.get("transaction_ids", ())) for line in logs["worker"]]
    assert any(funding["id"] in ids for ids in posted)
    assert any(refused in ids for ids in posted)
    [failure] = [line for line in logs["worker"] if line.get("transaction_id") == refused]
    assert (failure["failure_code"], failure["organization_id"]) == (
        "insufficient_funds",
        t.organization_id,
    )

    # and no credential ever reaches a log
    text = "".join(stack.logs(name) for name in PROCESSES)
    for secret in (JWT_SECRET, PASSWORD, t.token):
        assert secret not in text
