"""Webhook subscriptions: where casedesk's case events go, and what each receiver has had.

A subscription is a row of `webhooks` (migration 013): the receiver's URL, the
event types it wants, its state and its position in the event log (the sender
moves it once every event up to it was answered with a 2xx). The signing secret
(`whsec_<base64>`) is shown once, at creation; it is kept sealed with AES-GCM
under a key derived from CASEDESK_PII_KEY, and never logged or listed.

A URL is taken only if it is http(s), resolves, resolves to public addresses
(unless CASEDESK_WEBHOOK_ALLOW_PRIVATE=1, for local testing) and accepts a TCP
connection: a receiver nobody can reach is refused at once, not found out later.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import os
import socket
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
import msgspec
from eventsourcing.cipher import AESCipher
from eventsourcing.utils import Environment

from casedesk.services.store.event_store import LOG_HEAD_SQL
from casedesk.services.store.idempotency_keys import keep_answer

WebhookState = Literal["active", "paused", "failing", "disabled"]
CHANGED_CHANNEL = "webhooks_changed"  # the API notifies the sender of every change of a subscription
RESOLVE_SECONDS = 3.0
CONNECT_SECONDS = 3.0


class WebhookSubscription(msgspec.Struct, frozen=True, kw_only=True):
    """One subscription as GET /v1/webhooks lists it (never with its secret)."""

    webhook_id: UUID
    url: str
    event_types: list[str]
    description: str | None
    state: WebhookState
    position: int
    created_at: datetime
    created_by: str
    last_delivery_at: datetime | None
    last_error: str | None


class DeliveryAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """One try to deliver one event; `status` 0 means no HTTP answer (timeout, refused)."""

    webhook_id: UUID
    event_id: UUID
    position: int
    attempt: int
    status: int
    error: str | None
    at: datetime
    next_attempt_at: datetime | None


class RefusedUrlError(ValueError):
    """The URL cannot be a receiver; the message says why."""


class SecretSeal:
    """Seals and opens signing secrets (AES-GCM, the eventsourcing library's cipher)."""

    def __init__(self, pii_key: str) -> None:
        # A key of its own, derived from the PII key: one setting fewer, and not the digest key itself.
        key = hmac.new(pii_key.encode(), b"casedesk webhook secrets", hashlib.sha256).digest()
        self._cipher = AESCipher(Environment(env={AESCipher.CIPHER_KEY: base64.b64encode(key).decode()}))

    def seal(self, secret: str) -> bytes:
        return self._cipher.encrypt(secret.encode())

    def open(self, sealed: bytes) -> str:
        return self._cipher.decrypt(bytes(sealed)).decode()


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def is_public_address(address: str) -> bool:
    """Neither loopback, link-local, private, reserved nor multicast (IPv4 in IPv6 too)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_receiver(url: str, *, allow_private: bool) -> None:
    """Raise RefusedUrlError unless `url` is http(s), public (or allowed private) and reachable."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a bracketed host that is no IPv6 address, a port that is no number
        raise RefusedUrlError("is not a well-formed URL (its host or port)") from None
    if parts.scheme not in ("http", "https") or not host:
        raise RefusedUrlError("must be an http:// or https:// URL with a host")
    port = port or (443 if parts.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError):
        raise RefusedUrlError("names a host that does not resolve") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not allow_private and not all(is_public_address(a) for a in addresses):
        raise RefusedUrlError("resolves to a loopback, link-local or private address")
    for address in addresses:
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                _, writer = await asyncio.open_connection(address, port)
            writer.close()
            return
        except (OSError, TimeoutError):
            continue
    raise RefusedUrlError("is not reachable (no TCP connection to its host and port)")


_COLUMNS = ("webhook_id, url, event_types, description, state, position, created_at, created_by,"
            " last_delivery_at, last_error")


def _subscription(row: asyncpg.Record) -> WebhookSubscription:
    return WebhookSubscription(**dict(row))


class KeyTakenError(Exception):
    """A concurrent create with the same Idempotency-Key won; its answer is the one to give."""


async def create(
    pool: asyncpg.Pool, webhook_id: UUID, url: str, event_types: list[str], description: str | None,
    sealed: bytes, created_by: str, key: tuple[str, str, bytes] | None = None,
) -> WebhookSubscription:
    """A new active subscription, starting at the log's end: it gets what happens from now on.

    With an Idempotency-Key (principal, key, request digest) the key is kept in the same
    transaction, naming only the subscription: a repeat is answered from the row (its
    secret unsealed again), so the secret is never stored in clear.
    """
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"INSERT INTO webhooks (webhook_id, url, event_types, description, secret_sealed, created_by, position)"
            f" VALUES ($1, $2, $3, $4, $5, $6, {LOG_HEAD_SQL}) RETURNING {_COLUMNS}",
            webhook_id, url, event_types, description, sealed, created_by)
        if key is not None and not await keep_answer(conn, *key, 201, msgspec.json.encode({"webhook_id": webhook_id})):
            raise KeyTakenError(key[1])  # rolls the subscription back
        await conn.execute(f"NOTIFY {CHANGED_CHANNEL}")
    return _subscription(row)


async def with_secret(pool: asyncpg.Pool, webhook_id: UUID) -> tuple[WebhookSubscription, bytes] | None:
    """A subscription and its sealed secret (for the answer to a repeated create)."""
    row = await pool.fetchrow(f"SELECT {_COLUMNS}, secret_sealed FROM webhooks WHERE webhook_id = $1", webhook_id)
    if row is None:
        return None
    fields = dict(row)
    sealed = fields.pop("secret_sealed")
    return WebhookSubscription(**fields), bytes(sealed)


async def list_all(pool: asyncpg.Pool) -> list[WebhookSubscription]:
    rows = await pool.fetch(f"SELECT {_COLUMNS} FROM webhooks ORDER BY created_at, webhook_id")
    return [_subscription(r) for r in rows]


async def change_state(pool: asyncpg.Pool, webhook_id: UUID, state: WebhookState) -> WebhookSubscription | None:
    """Pause, or resume (active again, with a fresh retry window); None if there is no such subscription."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"UPDATE webhooks SET state = $2, revision = revision + 1,"
            f" failing_since = CASE WHEN $2 = 'active' THEN NULL ELSE failing_since END"
            f" WHERE webhook_id = $1 RETURNING {_COLUMNS}",
            webhook_id, state)
        await conn.execute(f"NOTIFY {CHANGED_CHANNEL}")
    return None if row is None else _subscription(row)


async def replay(pool: asyncpg.Pool, webhook_id: UUID, from_position: int) -> WebhookSubscription | None:
    """Deliver again every event from `from_position` on (its state unchanged)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"UPDATE webhooks SET position = greatest($2::bigint - 1, 0), failing_since = NULL,"
            f" revision = revision + 1 WHERE webhook_id = $1 RETURNING {_COLUMNS}",
            webhook_id, from_position)
        await conn.execute(f"NOTIFY {CHANGED_CHANNEL}")
    return None if row is None else _subscription(row)


async def delete(pool: asyncpg.Pool, webhook_id: UUID) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        gone = await conn.fetchval("DELETE FROM webhooks WHERE webhook_id = $1 RETURNING true", webhook_id)
        await conn.execute(f"NOTIFY {CHANGED_CHANNEL}")
    return bool(gone)


async def attempts_page(
    pool: asyncpg.Pool, webhook_id: UUID, limit: int, before: int | None
) -> tuple[list[DeliveryAttempt], int | None]:
    """A subscription's attempts, newest first, and the cursor of the next page (None at the end)."""
    rows = await pool.fetch(
        "SELECT attempt_id, webhook_id, event_id, position, attempt, status, error, at, next_attempt_at"
        " FROM webhook_attempts WHERE webhook_id = $1 AND attempt_id < $2 ORDER BY attempt_id DESC LIMIT $3",
        webhook_id, 2**62 if before is None else before, limit + 1)
    items = [DeliveryAttempt(**{k: v for k, v in r.items() if k != "attempt_id"}) for r in rows[:limit]]
    return items, (rows[limit - 1]["attempt_id"] if len(rows) > limit else None)


async def exists(pool: asyncpg.Pool, webhook_id: UUID) -> bool:
    return bool(await pool.fetchval("SELECT true FROM webhooks WHERE webhook_id = $1", webhook_id))


# --- what the sender and delivery read and write (services/effects/webhook_sender.py, webhook_delivery.py) ---


async def to_deliver(pool: asyncpg.Pool) -> dict[UUID, int]:
    """Each subscription to deliver (active or failing), with its revision (an admin's change raises it)."""
    rows = await pool.fetch("SELECT webhook_id, revision FROM webhooks WHERE state IN ('active', 'failing')")
    return {r["webhook_id"]: r["revision"] for r in rows}


async def delivery_row(pool: asyncpg.Pool, webhook_id: UUID) -> asyncpg.Record | None:
    """What delivering needs of one subscription: url, event types, sealed secret, state, position, failing_since."""
    return await pool.fetchrow(
        "SELECT url, event_types, secret_sealed, state, position, failing_since FROM webhooks"
        " WHERE webhook_id = $1", webhook_id)


async def forget_attempts_older_than(pool: asyncpg.Pool, interval: str) -> None:
    """Drop recorded attempts older than `interval` (a PostgreSQL interval of our own, never a client's)."""
    await pool.execute(f"DELETE FROM webhook_attempts WHERE at < now() - interval '{interval}'")


async def keep_attempts(pool: asyncpg.Pool, webhook_id: UUID, attempts: list[tuple[Any, ...]],
                        last_error: str | None, failing_since: datetime | None) -> None:
    """Record a round of attempts (event id, position, attempt, status, error, at, next attempt at) and,
    with `last_error`, mark the subscription's last error and since when it fails.

    One statement, so one transaction and one round trip.
    """
    columns = list(zip(*attempts, strict=True)) if attempts else [() for _ in range(7)]
    await pool.execute(
        "WITH kept AS (INSERT INTO webhook_attempts (webhook_id, event_id, position, attempt, status, error, at,"
        " next_attempt_at) SELECT $1, * FROM unnest($2::uuid[], $3::bigint[], $4::int[], $5::int[], $6::text[],"
        " $7::timestamptz[], $8::timestamptz[]))"
        " UPDATE webhooks SET last_error = $9, failing_since = coalesce(failing_since, $10)"
        " WHERE webhook_id = $1 AND $9::text IS NOT NULL",
        webhook_id, *[list(c) for c in columns], last_error, failing_since)


async def failing_since(pool: asyncpg.Pool, webhook_id: UUID) -> datetime | None:
    """Since when the subscription's deliveries fail, or None."""
    value: datetime | None = await pool.fetchval(
        "SELECT failing_since FROM webhooks WHERE webhook_id = $1", webhook_id)
    return value


async def move_past(pool: asyncpg.Pool, webhook_id: UUID, old: int, new: int, sent: bool) -> bool:
    """Move the position from `old` past a delivered batch to `new`; False if it was moved meanwhile."""
    moved = await pool.fetchval(
        "UPDATE webhooks SET position = $3, failing_since = NULL, last_error = NULL,"
        " last_delivery_at = CASE WHEN $4 THEN now() ELSE last_delivery_at END,"
        " state = CASE WHEN state = 'failing' THEN 'active' ELSE state END"
        " WHERE webhook_id = $1 AND position = $2 RETURNING true",
        webhook_id, old, new, sent)
    return bool(moved)


async def mark_stopped(pool: asyncpg.Pool, webhook_id: UUID, state: str, error: str) -> None:
    """`failing` or `disabled`, with why, unless an admin paused it; the position stays where it is."""
    await pool.execute("UPDATE webhooks SET state = $2, last_error = $3 WHERE webhook_id = $1 AND state <> 'paused'",
                       webhook_id, state, error)

