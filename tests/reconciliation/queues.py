"""Read what waits in a Dramatiq queue straight from Redis, without consuming it."""

from __future__ import annotations

import json
from typing import Any

import redis


def queued(redis_url: str, queue: str) -> list[dict[str, Any]]:
    """The messages waiting in `queue` (Dramatiq keeps them in `dramatiq:<queue>.msgs`)."""
    client = redis.Redis.from_url(redis_url)
    return [json.loads(raw) for raw in client.hvals(f"dramatiq:{queue}.msgs")]


def actors_queued(redis_url: str, queue: str) -> list[str]:
    return sorted(m["actor_name"] for m in queued(redis_url, queue))
