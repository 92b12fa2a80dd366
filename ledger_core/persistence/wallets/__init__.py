"""Wallets: their rows, status changes and the per-currency summary."""
