"""The PostgreSQL NOTIFY channels processes wake each other with."""

from __future__ import annotations

PENDING_CHANNEL = "vaultcraft_pending"
"""New PENDING transfers were committed: the posting dispatcher listens."""

FINAL_CHANNEL = "vaultcraft_final"
"""Transfers became final: the gateway's long polls (`?wait=`) listen."""

CREDENTIALS_CHANNEL = "vaultcraft_credentials"
"""A user's role, activity or password, or an API key, changed: every gateway forgets
what it remembered of them (payload `user:<id>` or `key:<id>`)."""
