"""The reference an agent says on every outbound or callback call ("your reference is 482 913").

Six digits, unique among the calls of the last 14 days, so a customer who
returns a missed call can check it through the IVR. Kept only as a keyed
digest (`call_codes`, migration 016): compared, never shown again.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from casedesk.services.personal_data import PersonalData

CODE_LIFETIME = timedelta(days=14)
_TRIES = 50  # at a million codes, even 100,000 calls a fortnight collide one time in ten


class CallCodes:
    """Hands out call references and tells whether one was given to a call."""

    def __init__(self, pool: asyncpg.Pool, personal: PersonalData) -> None:
        self._pool = pool
        self._personal = personal

    def code_key(self, code: str) -> str:
        return self._personal.digest("call-code", code)

    async def issue(self, *, contact_id: UUID, case_id: UUID, at: datetime) -> str:
        """A fresh code for the call; a code in use by a call of the last 14 days is never reissued."""
        for _ in range(_TRIES):
            code = f"{secrets.randbelow(1_000_000):06d}"
            taken = await self._pool.fetchval(
                "INSERT INTO call_codes (code_key, contact_id, case_id, issued_at) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (code_key) DO UPDATE SET contact_id = excluded.contact_id,"
                " case_id = excluded.case_id, issued_at = excluded.issued_at"
                " WHERE call_codes.issued_at < excluded.issued_at - $5::interval RETURNING contact_id",
                self.code_key(code), contact_id, case_id, at, CODE_LIFETIME)
            if taken is not None:
                return code
        raise RuntimeError("no free call reference found; the 14-day window is nearly full")

    async def withdraw(self, contact_id: UUID) -> None:
        await self._pool.execute("DELETE FROM call_codes WHERE contact_id = $1", contact_id)

    @contextlib.asynccontextmanager
    async def for_call(self, *, dialling: bool, contact_id: UUID, case_id: UUID,
                       at: datetime) -> AsyncIterator[str | None]:
        """A code for a call we place (None for an inbound one), withdrawn if the contact is refused."""
        if not dialling:
            yield None
            return
        code = await self.issue(contact_id=contact_id, case_id=case_id, at=at)
        try:
            yield code
        except BaseException:
            await self.withdraw(contact_id)
            raise
