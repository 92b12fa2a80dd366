"""Field types shared by every area's request models, and the list envelope.

Use these instead of bare `str` so limits and error codes stay the same everywhere:
`Amount` and `Currency` fail with the contract's `invalid_amount` / `invalid_currency`.
"""

from __future__ import annotations

import re
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, Field, StringConstraints
from pydantic_core import PydanticCustomError

from ledger_core.money import is_currency

_EMAIL_RE = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
_AMOUNT_RE = re.compile(r"(0|[1-9][0-9]{0,19})(\.[0-9]{1,18})?")


def _email(value: str) -> str:
    if not _EMAIL_RE.fullmatch(value):
        raise PydanticCustomError("email", "not a valid email address")
    return value


def _currency(value: str) -> str:
    if not is_currency(value):
        raise PydanticCustomError(
            "invalid_currency", "not an ISO 4217 currency code such as INR or USD"
        )
    return value


def _amount(value: str) -> str:
    if not _AMOUNT_RE.fullmatch(value) or not value.strip("0."):
        raise PydanticCustomError(
            "invalid_amount", 'a positive decimal string in major units, such as "10.50"'
        )
    return value


Email = Annotated[
    str,
    StringConstraints(min_length=3, max_length=320),
    AfterValidator(_email),
    Field(examples=["ada@example.com"]),
]
LoginEmail = Annotated[str, StringConstraints(min_length=1, max_length=320)]
MAX_PASSWORD_CHARS = 128
Password = Annotated[str, StringConstraints(min_length=10, max_length=1024)]
"""A password to check at login: as long as any password ever set (1024 before the cap)."""
NewPassword = Annotated[str, StringConstraints(min_length=10, max_length=MAX_PASSWORD_CHARS)]
"""10 to 128 characters. bcrypt alone reads only the first 72 bytes; it is given the
SHA-256 of the password, so every character counts. The cap bounds the work per request."""

MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=500)]


def _at_most_50(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 50:
        raise ValueError("metadata holds at most 50 keys")
    return value


Metadata = Annotated[dict[MetadataKey, MetadataValue], AfterValidator(_at_most_50)]
"""At most 50 string keys with string values, on transfers and wallets alike."""

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Currency = Annotated[
    str,
    StringConstraints(min_length=3, max_length=3),
    AfterValidator(_currency),
    Field(examples=["INR"], description="ISO 4217 currency code"),
]
Amount = Annotated[
    str,
    StringConstraints(max_length=40),
    AfterValidator(_amount),
    Field(examples=["10.50"], description="Decimal string in major units; never a number"),
]
"""Shape only: the places allowed by the currency are checked by `ledger_core.money`."""

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of a list, newest first; pass `next_cursor` as `?cursor=` for the next one."""

    data: list[T]
    next_cursor: str | None
