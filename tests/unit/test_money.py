"""Money parsing and formatting at the edge of the ledger."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_core.errors import InvalidAmount, InvalidCurrency
from ledger_core.money import MAX_MINOR_UNITS, exponent, format_amount, parse_amount

CURRENCIES = ["INR", "USD", "EUR", "JPY", "KWD", "BHD", "CLF"]


@given(st.sampled_from(CURRENCIES), st.integers(min_value=1, max_value=MAX_MINOR_UNITS))
def test_format_then_parse_is_identity(currency: str, minor: int) -> None:
    """Every representable amount survives a trip through its decimal string."""
    assert parse_amount(format_amount(minor, currency), currency) == minor


@given(st.sampled_from(CURRENCIES), st.integers(min_value=1, max_value=10**12))
def test_trailing_zeros_are_the_same_amount(currency: str, minor: int) -> None:
    """`"10.5"` and `"10.50"` are one amount; fewer decimals than the currency are fine."""
    text = format_amount(minor, currency)
    if "." in text:
        trimmed = text.rstrip("0").rstrip(".")
        assert parse_amount(trimmed, currency) == minor


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.none())
def test_non_strings_are_refused(value: object) -> None:
    """Numbers are never accepted as money, not even whole ones."""
    with pytest.raises(InvalidAmount):
        parse_amount(value, "USD")


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        ("1.001", "INR"),
        ("1.5", "JPY"),
        ("0", "USD"),
        ("0.00", "USD"),
        ("-1", "USD"),
        ("+1", "USD"),
        ("1e3", "USD"),
        ("1E3", "USD"),
        ("NaN", "USD"),
        ("Infinity", "USD"),
        ("92233720368547758.08", "USD"),
        ("99999999999999999999999", "USD"),
        (" 1", "USD"),
        ("1,00", "USD"),
        ("", "USD"),
        ("1.", "USD"),
        (".5", "USD"),
        ("\uff11", "USD"),  # a full-width digit one
    ],
)
def test_bad_amounts_are_refused(value: str, currency: str) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(value, currency)


def test_the_ledger_maximum_is_accepted() -> None:
    assert parse_amount("92233720368547758.07", "USD") == MAX_MINOR_UNITS


@pytest.mark.parametrize("code", ["XXX", "ABC", "usd", "US", "XAU", "", "USDD"])
def test_unknown_or_non_money_currencies_are_refused(code: str) -> None:
    with pytest.raises(InvalidCurrency):
        exponent(code)


def test_exponents_come_from_iso_4217() -> None:
    assert (exponent("JPY"), exponent("INR"), exponent("KWD")) == (0, 2, 3)


def test_negative_balances_format_with_a_sign() -> None:
    assert format_amount(-5, "USD") == "-0.05"
    assert format_amount(-1234, "JPY") == "-1234"
