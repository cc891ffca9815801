"""Answers kept under an Idempotency-Key: the `idempotency_keys` table and all its SQL.

A key is kept as a keyed digest (the header may hold anything a client typed),
with the digest of the request it came with and the first answer, for 24 hours.
The event store writes the answers of a batch of commands in the batch's
transaction; routes that write no events (webhook subscriptions, call
verification) keep theirs here in their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

KEPT_HOURS = 24


@dataclass(frozen=True, slots=True)
class KeptAnswer:
    """The first answer given under a key, and the digest of the request it answered."""

    request_hash: bytes
    status: int
    response: bytes


async def kept_answer(conn: asyncpg.Connection | asyncpg.Pool, principal: str, key: str) -> KeptAnswer | None:
    """The answer kept under this caller's key, or None; a key older than 24 hours is free again."""
    row = await conn.fetchrow(
        "SELECT request_hash, status, response, created_at > now() - make_interval(hours => $3) AS live"
        " FROM idempotency_keys WHERE principal = $1 AND key = $2", principal, key, KEPT_HOURS)
    if row is None:
        return None
    if not row["live"]:
        # Else its row would refuse the key forever.
        await conn.execute(
            "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2"
            " AND created_at <= now() - make_interval(hours => $3)", principal, key, KEPT_HOURS)
        return None
    return KeptAnswer(bytes(row["request_hash"]), row["status"], bytes(row["response"]))


async def keep_answer(conn: asyncpg.Connection, principal: str, key: str, request_hash: bytes,
                      status: int, response: bytes) -> bool:
    """Keep one answer in the caller's transaction; False when the key was taken first."""
    taken: bool | None = await conn.fetchval(
        "INSERT INTO idempotency_keys (principal, key, request_hash, status, response) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT DO NOTHING RETURNING true", principal, key, request_hash, status, response)
    return bool(taken)


async def keep_answers(conn: asyncpg.Connection, principals: Sequence[str], keys: Sequence[str],
                       request_hashes: Sequence[bytes], statuses: Sequence[int],
                       responses: Sequence[bytes]) -> set[tuple[str, str]]:
    """Keep a batch's answers in one statement; the (principal, key) pairs this call took."""
    return {
        (r[0], r[1])
        for r in await conn.fetch(
            "INSERT INTO idempotency_keys (principal, key, request_hash, status, response)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::smallint[], $5::bytea[])"
            " ON CONFLICT DO NOTHING RETURNING principal, key",
            list(principals), list(keys), list(request_hashes), list(statuses), list(responses))
    }
