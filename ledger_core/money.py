"""Money at the edge is a decimal string in major units; inside it is an integer of minor units.

Currency exponents come from the ISO 4217 tables shipped by the `iso4217` package, so a
currency that changes its minor unit is an upgrade away, not a hand edit.
"""

from __future__ import annotations

import re
from functools import lru_cache

from iso4217 import Currency

from ledger_core.errors import InvalidAmount, InvalidCurrency

MAX_MINOR_UNITS = 2**63 - 1
"""The ledger stores minor units in signed 64-bit columns; nothing larger is accepted."""

_AMOUNT_RE = re.compile(r"(?P<whole>0|[1-9][0-9]*)(?:\.(?P<frac>[0-9]+))?")


@lru_cache(maxsize=512)
def exponent(currency: str) -> int:
    """Number of decimal places of an ISO 4217 currency; refuses codes that are not money."""
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise InvalidCurrency(f"{currency!r} is not an ISO 4217 currency code", field="currency")
    try:
        found = Currency(currency)
    except ValueError:
        raise InvalidCurrency(f"{currency} is not an ISO 4217 currency", field="currency") from None
    if found.exponent is None:
        raise InvalidCurrency(f"{currency} has no minor unit and is not money", field="currency")
    return int(found.exponent)


def is_currency(currency: str) -> bool:
    try:
        exponent(currency)
    except InvalidCurrency:
        return False
    return True


def parse_amount(value: object, currency: str, *, field: str = "amount") -> int:
    """Turn a decimal string such as ``"10.50"`` into minor units (``1050``).

    Refuses anything that is not a plain positive decimal string: numbers, exponents,
    signs, NaN/Infinity, more decimals than the currency has, zero, and values that do
    not fit the ledger's 64-bit columns.
    """
    places = exponent(currency)
    if not isinstance(value, str):
        raise InvalidAmount('amount must be a decimal string such as "10.50"', field=field)
    match = _AMOUNT_RE.fullmatch(value)
    if match is None:
        raise InvalidAmount(f"{value[:40]!r} is not a plain decimal amount", field=field)
    whole, frac = match.group("whole"), match.group("frac") or ""
    if len(frac) > places:
        raise InvalidAmount(f"{currency} allows at most {places} decimal places", field=field)
    if len(whole) > 20:
        raise InvalidAmount("amount is above the ledger maximum", field=field)
    scale: int = 10**places
    minor = int(whole) * scale + int(frac.ljust(places, "0") or "0")
    if minor <= 0:
        raise InvalidAmount("amount must be greater than zero", field=field)
    if minor > MAX_MINOR_UNITS:
        raise InvalidAmount(
            f"amount is above the ledger maximum {format_amount(MAX_MINOR_UNITS, currency)}",
            field=field,
        )
    return minor


def format_amount(minor: int, currency: str) -> str:
    """Render minor units as a decimal string with exactly the currency's places."""
    places = exponent(currency)
    sign = "-" if minor < 0 else ""
    digits = str(abs(minor))
    if places == 0:
        return sign + digits
    digits = digits.rjust(places + 1, "0")
    return f"{sign}{digits[:-places]}.{digits[-places:]}"
