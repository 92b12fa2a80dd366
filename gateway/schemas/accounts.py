"""Models of the auth, user and organization routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

from gateway.pagination import PageQuery
from gateway.schemas.common import Currency, Email, LoginEmail, Name, NewPassword, Password
from gateway.validation import BodyModel

RoleName = Literal["ADMIN", "MEMBER"]


class Signup(BodyModel):
    email: Email
    password: NewPassword
    full_name: Name
    organization_name: Name
    default_currency: Currency = "INR"


class Login(BodyModel):
    email: LoginEmail
    password: Password


class CreateUser(BodyModel):
    email: Email
    password: NewPassword
    full_name: Name
    role: RoleName


class ListUsers(PageQuery):
    pass


class UpdateUser(BodyModel):
    role: RoleName | None = None
    is_active: bool | None = None


class ChangePassword(BodyModel):
    current_password: Password
    new_password: NewPassword


class OrganizationOut(BaseModel):
    id: UUID
    name: str
    default_currency: str
    created_at: datetime


class UserOut(BaseModel):
    id: UUID
    organization_id: UUID
    email: str
    full_name: str
    role: RoleName
    is_active: bool
    created_at: datetime


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int


class SignupOut(TokenOut):
    user: UserOut
    organization: OrganizationOut


class OrganizationRef(BaseModel):
    id: UUID
    name: str


class MeOut(UserOut):
    """The caller: the fields of `UserOut`, and their organization."""

    organization: OrganizationRef
