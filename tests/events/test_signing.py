"""Webhook signatures and the retry schedule (no I/O)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

import pytest

from ledger_core.webhooks import RetryPolicy, new_secret, sign, verify

BODY = b'{"id":"e1","type":"transfer.completed","data":{"amount":"10.50"}}'


class TestSignature:
    def test_a_signed_body_verifies_with_the_library_and_the_readme_helper(
        self, readme_verify: Callable[..., bool]
    ) -> None:
        secret = new_secret()
        header = sign(secret, BODY)

        assert header.startswith("t=") and ",v1=" in header
        assert verify(secret, header, BODY)
        assert readme_verify(secret, header, BODY)

    def test_the_mac_is_over_timestamp_dot_raw_body(self) -> None:
        """The documented construction, computed independently."""
        header = sign("whsec_test", b"{}", timestamp=1_700_000_000)

        expected = hmac.new(b"whsec_test", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert header == f"t=1700000000,v1={expected}"

    @pytest.mark.parametrize(
        "mutate",
        [
            lambda s, h, b: (s + "x", h, b),  # another secret
            lambda s, h, b: (s, h, b + b" "),  # the body changed (even whitespace)
            lambda s, h, b: (s, h.replace("t=", "t=1"), b),  # the timestamp changed
            lambda s, h, b: (s, h.split(",")[0], b),  # no v1
            lambda s, h, b: (s, "garbage", b),
            lambda s, h, b: (s, "", b),
        ],
    )
    def test_anything_changed_fails(
        self, mutate: Callable[..., tuple[str, str, bytes]], readme_verify: Callable[..., bool]
    ) -> None:
        secret = new_secret()
        args = mutate(secret, sign(secret, BODY), BODY)

        assert not verify(*args)
        assert not readme_verify(*args)

    def test_old_signatures_are_refused(self, readme_verify: Callable[..., bool]) -> None:
        secret = new_secret()
        old = sign(secret, BODY, timestamp=int(time.time()) - 301)

        assert not verify(secret, old, BODY)
        assert not readme_verify(secret, old, BODY)
        assert verify(secret, old, BODY, tolerance_s=600)

    def test_any_of_several_v1_values_may_match(self) -> None:
        """Lets a sender sign with two secrets while one is being rotated."""
        secret = new_secret()
        header = sign(secret, BODY)
        rotated = header.replace("v1=", "v1=" + "0" * 64 + ",v1=")

        assert verify(secret, rotated, BODY)


class TestRetryPolicy:
    def test_delays_grow_exponentially_with_jitter_and_a_cap(self) -> None:
        policy = RetryPolicy(max_attempts=10, base_ms=1000, max_ms=60_000)

        for attempt, ceiling in [(1, 1000), (2, 2000), (3, 4000), (7, 60_000), (9, 60_000)]:
            assert policy.delay_ms(attempt, rand=lambda: 0.0) == ceiling // 2
            assert policy.delay_ms(attempt, rand=lambda: 0.999999) in range(
                ceiling - 1, ceiling + 1
            )
        delays = {policy.delay_ms(3) for _ in range(50)}
        assert len(delays) > 1 and all(2000 <= d <= 4000 for d in delays)

    def test_at_least_eight_attempts_then_failed(self) -> None:
        with pytest.raises(ValueError):
            RetryPolicy(max_attempts=7)
        policy = RetryPolicy(max_attempts=8, base_ms=10, max_ms=100)

        assert policy.after(1, 200) == ("SUCCEEDED", None)
        assert policy.after(8, 299)[0] == "SUCCEEDED"
        for attempt in range(1, 8):
            status, delay = policy.after(attempt, 500 if attempt % 2 else None)
            assert status == "PENDING" and delay is not None and 0 < delay <= 100
        assert policy.after(8, 500) == ("FAILED", None)
        assert policy.after(8, None) == ("FAILED", None)
        assert policy.after(3, 302)[0] == "PENDING"  # redirects are not followed
