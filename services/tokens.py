"""Bearer tokens: HS256 JWTs with the agent's id, name, role and departments."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Literal

import jwt
import msgspec

# `ivr`: the issuer's phone system, a service token that may only verify calls (POST /v1/call-verifications).
Role = Literal["agent", "supervisor", "auditor", "admin", "ivr"]
ROLES: tuple[Role, ...] = ("agent", "supervisor", "auditor", "admin", "ivr")


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


# Tokens whose signature was already checked: an agent sends the same token with
# every request, and checking it again costs more than the rest of a small read.
_verified: OrderedDict[tuple[str, str], Principal] = OrderedDict()
VERIFIED_KEPT = 10_000


def read_token(secret: str, token: str) -> Principal:
    key = (secret, token)
    principal = _verified.get(key)
    if principal is None:
        try:
            claims = jwt.decode(
                token, secret, algorithms=["HS256"], options={"require": ["exp", "sub", "role"]}
            )
            principal = msgspec.convert(claims, Principal)
        except (jwt.PyJWTError, msgspec.ValidationError) as error:
            raise InvalidTokenError(str(error)) from error
        _verified[key] = principal
        if len(_verified) > VERIFIED_KEPT:
            _verified.popitem(last=False)
    if principal.exp <= time.time():  # as PyJWT decides it, on every use
        _verified.pop(key, None)
        raise InvalidTokenError("Signature has expired")
    return principal
