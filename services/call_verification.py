"""'Did my bank just call me?': the IVR asks, for a calling number and maybe a reference.

The answer says only whether the issuer called that number in the last 14 days,
when, from which department and for what kind of purpose, and whether the
reference matches; a number never called gets the same shape. Each number may
be checked 5 times an hour, each IVR token CASEDESK_IVR_TOKEN_RATE times a minute;
after 5 wrong references for a number none matches for an hour. All counted in
PostgreSQL (migration 016), so the limits hold across processes.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from functools import partial
from uuid import UUID

import asyncpg
import msgspec
import structlog

from casedesk.domain.decisions import record_call_verified
from casedesk.domain.errors import RuleViolation
from casedesk.domain.values import CodeCheck
from casedesk.services.call_codes import CODE_LIFETIME, CallCodes
from casedesk.services.case_service import CaseNotFoundError, CaseService, Idempotency
from casedesk.services.personal_data import PersonalData
from casedesk.services.tokens import Principal

log = structlog.get_logger("casedesk.call_verification")

PER_NUMBER_PER_HOUR = 5
WRONG_CODES_BEFORE_LOCK = 5
HOUR = timedelta(hours=1)
CALLS_TOLD = 5


class CallSeen(msgspec.Struct, frozen=True, kw_only=True):
    """One of our calls to the number: when, from which department, what kind of call."""

    at: datetime
    department: str
    purpose_category: str


class CallVerificationAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """POST /v1/call-verifications: the same shape whether or not we called the number."""

    called: bool
    calls: list[CallSeen]
    code_matches: bool | None


class CallChecked(msgspec.Struct, frozen=True, kw_only=True):
    """A call the customer checked, to record on its case (CallVerified)."""

    case_id: UUID
    contact_id: UUID
    code: CodeCheck


class TooManyChecksError(Exception):
    """A number (or an IVR token) was checked too often; try again after `retry_after` seconds."""

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(f"too many call verifications for {what}")
        self.what = what
        self.retry_after = max(1, retry_after)


class CallVerifier:
    """Answers the IVR and says which calls to record as checked."""

    def __init__(self, pool: asyncpg.Pool, personal: PersonalData, codes: CallCodes, token_per_minute: int) -> None:
        self._pool = pool
        self._personal = personal
        self._codes = codes
        self.token_per_minute = token_per_minute

    async def verify(self, *, phone: str, code: str | None, token: str, now: datetime,
                     idempotency: Idempotency | None = None) -> tuple[CallVerificationAnswer, list[CallChecked]]:
        """The answer and the calls to record; with an Idempotency-Key the answer is kept (in the same
        transaction as the count), so the IVR's retry gets it again and is not counted twice."""
        keys = self._personal.phone_keys(phone)  # today's digest first, then the old rule's
        await self._count_token(token, now)
        number = "phone:" + keys[0]
        async with self._pool.acquire() as conn, conn.transaction():
            # One check of a number at a time, so 20 at once cannot all see "4 so far". A transaction lock
            # (PgBouncer-safe) in the two-key space, apart from the migration and projection locks' keys.
            await conn.execute("SELECT pg_advisory_xact_lock(20, hashtext($1))", number)
            await _refuse_past_limit(conn, number, now)
            since = now - CODE_LIFETIME
            calls = await conn.fetch(
                "SELECT case_id, contact_id, at, department, purpose_category FROM outbound_attempts"
                " WHERE phone_key = ANY($1::text[]) AND at > $2 ORDER BY at DESC LIMIT $3", keys, since, CALLS_TOLD)
            # The call the reference was given on, if it was one of ours to this number (of any age up to 14 days).
            fitting = None if code is None else await conn.fetchrow(
                "SELECT o.case_id, o.contact_id FROM call_codes c JOIN outbound_attempts o USING (contact_id)"
                " WHERE c.code_key = $1 AND o.phone_key = ANY($2::text[]) AND o.at > $3",
                self._codes.code_key(code), keys, since)
            check = await _code_check(conn, number, code, fitting is not None, now)
            await conn.execute(
                "INSERT INTO call_verification_requests (subject, at, wrong_code) VALUES ($1, $2, $3)",
                number, now, check == "wrong")
            answer = CallVerificationAnswer(
                called=bool(calls),
                calls=[CallSeen(at=c["at"], department=c["department"], purpose_category=c["purpose_category"])
                       for c in calls],
                code_matches=None if code is None else check == "matched")
            if idempotency is not None:
                await conn.execute(
                    "INSERT INTO idempotency_keys (principal, key, request_hash, status, response)"
                    " VALUES ($1, $2, $3, 200, $4) ON CONFLICT DO NOTHING",
                    idempotency.principal, idempotency.key, idempotency.request_hash, msgspec.json.encode(answer))
        return answer, _checked(calls, check, fitting)

    async def _count_token(self, token: str, now: datetime) -> None:
        minute = now.replace(second=0, microsecond=0)
        requests = await self._pool.fetchval(
            "WITH done AS (DELETE FROM call_verification_rates WHERE subject = $1 AND minute < $2)"
            " INSERT INTO call_verification_rates (subject, minute, requests) VALUES ($1, $2, 1)"
            " ON CONFLICT (subject, minute) DO UPDATE SET requests = call_verification_rates.requests + 1"
            " RETURNING requests", "token:" + token, minute)
        if requests > self.token_per_minute:
            raise TooManyChecksError("this IVR token", math.ceil((minute + timedelta(minutes=1) - now).total_seconds()))


async def _refuse_past_limit(conn: asyncpg.Connection, number: str, now: datetime) -> None:
    # This number's requests older than the hour go, and a few of any other number's, so none pile up.
    await conn.execute(
        "DELETE FROM call_verification_requests WHERE (subject = $1 AND at <= $2) OR ctid = ANY(ARRAY("
        "SELECT ctid FROM call_verification_requests WHERE at <= $2 LIMIT 20))", number, now - HOUR)
    row = await conn.fetchrow(
        "SELECT count(*) AS n, min(at) AS oldest FROM call_verification_requests WHERE subject = $1", number)
    if row["n"] >= PER_NUMBER_PER_HOUR:
        raise TooManyChecksError("this number", math.ceil((row["oldest"] + HOUR - now).total_seconds()))


async def _code_check(conn: asyncpg.Connection, number: str, code: str | None, fits: bool,
                      now: datetime) -> CodeCheck:
    """What became of the reference: a locked number matches none for an hour after 5 wrong ones."""
    if code is None:
        return "not_given"
    locked_until = await conn.fetchval("SELECT locked_until FROM call_code_locks WHERE subject = $1", number)
    if locked_until is not None and locked_until > now:
        return "locked"
    if fits:
        return "matched"
    wrong = await conn.fetchval(
        "SELECT count(*) FROM call_verification_requests WHERE subject = $1 AND wrong_code", number)
    if wrong + 1 >= WRONG_CODES_BEFORE_LOCK:
        await conn.execute(
            "INSERT INTO call_code_locks (subject, locked_until) VALUES ($1, $2)"
            " ON CONFLICT (subject) DO UPDATE SET locked_until = excluded.locked_until", number, now + HOUR)
    return "wrong"


def _checked(calls: list[asyncpg.Record], check: CodeCheck, fitting: asyncpg.Record | None) -> list[CallChecked]:
    """The calls to record as checked: the one whose reference matched, else each case's latest call."""
    if check == "matched" and fitting is not None:
        return [CallChecked(case_id=fitting["case_id"], contact_id=fitting["contact_id"], code=check)]
    latest: dict[UUID, asyncpg.Record] = {}
    for c in calls:  # newest first
        latest.setdefault(c["case_id"], c)
    return [CallChecked(case_id=case_id, contact_id=c["contact_id"], code=check) for case_id, c in latest.items()]


async def record_checks(cases: CaseService, principal: Principal, checked: list[CallChecked]) -> None:
    """Record each check on its case (CallVerified), so the agent who picks up the returning call sees it.

    The customer's answer does not wait on a case that cannot take it (merged away, gone).
    """
    for c in checked:
        decide = partial(record_call_verified, contact_id=c.contact_id, channel="ivr", code=c.code)
        try:
            await cases.change(principal, c.case_id, decide, for_customer=True)
        except (RuleViolation, CaseNotFoundError) as refused:
            log.warning("call_check_not_recorded", case_id=str(c.case_id), reason=str(refused))
