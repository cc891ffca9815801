"""Bearer tokens: HS256 JWTs with the agent's id, name, role and departments."""

from __future__ import annotations

import time
from typing import Literal

import jwt
import msgspec

Role = Literal["agent", "supervisor", "auditor", "admin"]
ROLES: tuple[Role, ...] = ("agent", "supervisor", "auditor", "admin")


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling, as the token says."""

    sub: str
    name: str
    role: Role
    departments: tuple[str, ...]
    exp: int


class InvalidTokenError(Exception):
    """The token is missing, expired, forged or malformed."""


def issue_token(
    secret: str,
    *,
    sub: str,
    name: str,
    role: Role,
    departments: list[str] | tuple[str, ...],
    ttl: int = 8 * 3600,
) -> str:
    claims = {
        "sub": sub,
        "name": name,
        "role": role,
        "departments": list(departments),
        "exp": int(time.time()) + ttl,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def read_token(secret: str, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "sub", "role"]}
        )
        return msgspec.convert(claims, Principal)
    except (jwt.PyJWTError, msgspec.ValidationError) as error:
        raise InvalidTokenError(str(error)) from error
