"""Bearer tokens: HS256 JWTs with the agent's id, name, role and departments."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Literal

import jwt
import msgspec

from casedesk.domain.card_data import contains_card_data

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


# Tokens whose signature was already checked: an agent sends the same token with
# every request, and checking it again costs more than the rest of a small read.
_verified: OrderedDict[tuple[str, str], Principal] = OrderedDict()
VERIFIED_KEPT = 10_000


def _refuse_unusable_claims(principal: Principal) -> None:
    """Claims that would be written down as they are must be fit to write down.

    `sub`, `name` and `departments` go into events (the actor), the timeline
    and the log: one holding a card number or a security code would store it,
    so the token is refused. An empty `sub` names nobody, so nothing it did
    could be told apart from another nobody's.
    """
    if not principal.sub.strip():
        raise InvalidTokenError("the sub claim is empty")
    for claim, values in (("sub", [principal.sub]), ("name", [principal.name]),
                          ("departments", principal.departments)):
        if any(contains_card_data(value) for value in values):
            raise InvalidTokenError(f"the {claim} claim holds card data, which is never accepted")


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
        _refuse_unusable_claims(principal)
        _verified[key] = principal
        if len(_verified) > VERIFIED_KEPT:
            _verified.popitem(last=False)
    if principal.exp <= time.time():  # as PyJWT decides it, on every use
        _verified.pop(key, None)
        raise InvalidTokenError("Signature has expired")
    return principal
