"""API keys at the edge: who a `Bearer vk_...` key is, checked at most a second ago.

A presented key is looked up by its id (the primary key) and its secret compared in
constant time with the stored SHA-256 (`ledger_core.api_keys.secret_matches`). Answers
are remembered for `KeyCache.ttl_s` (one second); a revocation NOTIFYs every gateway
process, which forgets them at once (`gateway.credential_listener`), and the second bounds
what a disconnected listener could miss. A use is written to `last_used_at` at most once a minute per key.
"""

from __future__ import annotations

from aiohttp import web

from gateway.responses import unauthorized
from gateway.state import ENGINE, KEY_CACHE, KEY_RATE_LIMIT
from ledger_core.accounts import Principal
from ledger_core.services import api_keys


async def authenticate_key(request: web.Request, key: str) -> Principal:
    """The principal of a valid key; malformed, unknown, revoked or expired keys are 401."""
    cache = request.app[KEY_CACHE]
    known, answer = cache.get(key)
    if not known:
        resolved = await api_keys.key_principal(request.app[ENGINE], key)
        answer = None if resolved is None else (resolved[0], resolved[1].rate_limit)
        cache.put(key, answer)
    if answer is None:
        raise unauthorized("the API key is invalid, revoked or expired")
    found, own_limit = answer
    if own_limit is not None:
        request[KEY_RATE_LIMIT] = own_limit
    if found.key_id is not None and cache.due_for_touch(found.key_id):
        await api_keys.touch_key(request.app[ENGINE], found.key_id)
    return found
