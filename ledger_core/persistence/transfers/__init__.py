"""Transfers: storing intents (one, grouped, batches), posting, cancelling, reversing, reading."""
