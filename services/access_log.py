"""The access log: who read a case's audit history or unmasked personal data, and why.

Rows are only ever added (migration 006 makes UPDATE, DELETE and TRUNCATE
raise). A handler that shows such data calls `record_access` before it
answers, so nothing is shown that was not logged.
"""

from __future__ import annotations

import re
from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec

from casedesk.domain.card_data import redact_card_numbers
from casedesk.services.tokens import Principal

REASON_HEADER = "X-Access-Reason"
NO_REASON = "not given"
MAX_REASON = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class AccessEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One row of GET /v1/cases/{id}/access-log."""

    id: int
    at: datetime
    agent_id: str
    agent_name: str
    role: str
    case_id: UUID | None
    what: str
    why: str


class AccessLogPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[AccessEntry]
    next_cursor: str | None


def reason_of(header: str | None) -> str:
    """The X-Access-Reason as stored: one line, card numbers redacted, bounded; 'not given' if empty."""
    text = (header or "").encode("utf-8", "replace").decode()  # bytes that were not UTF-8 become '?'
    reason = _CONTROL.sub(" ", text).strip()[:MAX_REASON]
    return redact_card_numbers(reason) if reason else NO_REASON


async def record_access(
    pool: asyncpg.Pool | asyncpg.Connection, principal: Principal, case_id: UUID | None, what: str, why: str
) -> None:
    """Append who (from the token) saw what of which case, and the reason they gave."""
    await pool.execute(
        "INSERT INTO access_log (agent_id, agent_name, role, case_id, what, why) VALUES ($1, $2, $3, $4, $5, $6)",
        principal.sub, principal.name, principal.role, case_id, what, why,
    )


async def access_page(
    pool: asyncpg.Pool, case_id: UUID, limit: int, before: int | None
) -> list[AccessEntry]:
    """A case's access rows, newest first, older than the `before` id if given."""
    rows = await pool.fetch(
        "SELECT id, at, agent_id, agent_name, role, case_id, what, why FROM access_log"
        " WHERE case_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        case_id, 2**62 if before is None else before, limit,
    )
    return [AccessEntry(**dict(r)) for r in rows]
