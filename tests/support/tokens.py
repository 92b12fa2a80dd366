"""Bad bearer tokens of every kind, for tests that every authenticated route refuses them."""

from __future__ import annotations

import base64
import json
import time
import uuid
import warnings

import jwt
from jwt.warnings import InsecureKeyLengthWarning


def forge(claims: dict[str, object], key: str, alg: str = "HS256") -> str:
    """A token signed with `key` and `alg`. Signing with HS512 under a key sized for HS256
    is what a forger does on purpose; PyJWT's warning about the key's length is not news."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, key, algorithm=alg)


def alg_none(claims: dict[str, object]) -> str:
    """An unsigned token (`alg: none`), which must never be accepted."""

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def bad_authorizations(secret: str, user_id: str, good_token: str) -> dict[str, dict[str, str]]:
    """Authorization headers that must all be answered `401`, by what is wrong with them."""
    now = int(time.time())
    good = {"sub": user_id, "iat": now, "exp": now + 60}

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    return {
        "missing": {},
        "empty bearer": {"Authorization": "Bearer"},
        "garbage": bearer("not.a.jwt"),
        "basic scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "wrong scheme": {"Authorization": f"Token {good_token}"},
        "expired": bearer(forge({**good, "exp": now - 10, "iat": now - 100}, secret)),
        "wrong key": bearer(forge(good, "some-other-key-" + "z" * 32)),
        "alg none": bearer(alg_none(good)),
        "no exp": bearer(forge({"sub": user_id, "iat": now}, secret)),
        "no iat": bearer(forge({"sub": user_id, "exp": now + 60}, secret)),
        "no sub": bearer(forge({"iat": now, "exp": now + 60}, secret)),
        "sub not a uuid": bearer(forge({**good, "sub": "not-a-uuid"}, secret)),
        "unknown user": bearer(forge({**good, "sub": str(uuid.uuid4())}, secret)),
        "other algorithm": bearer(forge(good, secret, alg="HS512")),
        "tampered signature": bearer(
            good_token[:-3] + ("abc" if good_token[-3:] != "abc" else "xyz")
        ),
        "tampered claims": bearer(_tampered(good_token, str(uuid.uuid4()))),
        "malformed API key": bearer("vk_not-a-key"),
        "unknown API key": bearer("vk_" + uuid.uuid4().hex + "A" * 43),
    }


def _tampered(token: str, sub: str) -> str:
    """The token with its subject swapped and the original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = sub
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"
