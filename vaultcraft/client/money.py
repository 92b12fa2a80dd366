"""Amounts on their way out: decimal strings in major units, never floats."""

from __future__ import annotations

from decimal import Decimal

Amount = Decimal | str | int


def amount_text(amount: Amount) -> str:
    """`amount` as the API wants it (`"10.50"`); a float is refused, not rounded."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | str | int):
        raise TypeError(f"amounts are Decimal, str or int, never {type(amount).__name__}")
    if isinstance(amount, Decimal):
        return format(amount, "f")
    return str(amount)
