"""Bearer tokens: HS256 JWTs with the agent's id, name, role and departments.

Each token's header names the key it was signed with (`kid`, a fingerprint of
the secret), so a token refused for its signature can say which secret signed
it and which one the server holds, without either secret being shown. The
fingerprint tells nothing a signed token does not: both can only be checked
against a guess of the secret.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Literal

import jwt
import msgspec

from casedesk.domain.card_data import contains_card_data

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


class SignedWithAnotherSecretError(InvalidTokenError):
    """The signature does not verify: another secret signed it (`signed_with`: its key id, if it says)."""

    def __init__(self, signed_with: str | None) -> None:
        super().__init__("Signature verification failed")
        self.signed_with = signed_with


def key_id(secret: str) -> str:
    """A short fingerprint naming a token secret, never revealing it."""
    return hashlib.sha256(b"casedesk token key:" + secret.encode()).hexdigest()[:12]


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
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id(secret)})


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
        except jwt.InvalidSignatureError as error:
            raise SignedWithAnotherSecretError(_named_key(token)) from error
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


def _named_key(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) and len(kid) <= 64 and kid.isalnum() else None
