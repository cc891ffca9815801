"""'Did my bank just call me?': the IVR asks, for a calling number and maybe a reference.

The answer says only whether the issuer called that number in the last 14 days,
when, from which department and for what kind of purpose, and whether the
reference matches; a number never called gets the same shape. Each number may
be checked 5 times an hour, each IVR token CASEDESK_IVR_TOKEN_RATE times a minute;
after 5 wrong references for a number none matches for an hour. All counted in
PostgreSQL (migration 016), so the limits hold across processes.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from uuid import UUID

import asyncpg
import msgspec
import structlog

from casedesk.domain.decisions import record_call_verified
from casedesk.domain.errors import RuleViolation
from casedesk.domain.values import CodeCheck
from casedesk.services.call_codes import CallCodes
from casedesk.services.case_service import CaseNotFoundError, CaseService, Idempotency
from casedesk.services.personal_data import PersonalData
from casedesk.services.store.idempotency_keys import keep_answer
from casedesk.services.tokens import Principal

log = structlog.get_logger("casedesk.call_verification")

PER_NUMBER_PER_HOUR = 5
WRONG_CODES_BEFORE_LOCK = 5
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
        """The answer and the calls to record, or TooManyChecksError with the seconds to wait.

        One round trip: migration 016's casedesk_check_call counts, finds the calls and the reference,
        and locks. With an Idempotency-Key the answer is kept in the transaction that counts the check,
        so the IVR's retry gets it again and is not counted twice. A refused check still counts.
        """
        keys = self._personal.phone_keys(phone)  # today's digest first, then the old rule's
        args = ("phone:" + keys[0], "token:" + token, keys, self._codes.code_key(code) if code else None, now,
                self.token_per_minute, PER_NUMBER_PER_HOUR, WRONG_CODES_BEFORE_LOCK, CALLS_TOLD)
        if idempotency is None:
            row = await self._pool.fetchrow(_CHECK, *args)
        else:
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(_CHECK, *args)
                if row["refused"] is None:
                    await keep_answer(conn, idempotency.principal, idempotency.key, idempotency.request_hash,
                                      200, msgspec.json.encode(_answer(row, code)))
        if row["refused"] is not None:
            raise TooManyChecksError(row["refused"], row["retry_after"])
        return _answer(row, code), _checked(row)


_CHECK = "SELECT * FROM casedesk_check_call($1, $2, $3, $4, $5, $6, $7, $8, $9)"


def _answer(row: asyncpg.Record, code: str | None) -> CallVerificationAnswer:
    calls = zip(row["call_ats"] or (), row["call_departments"] or (), row["call_categories"] or (), strict=True)
    return CallVerificationAnswer(
        called=row["call_ats"] is not None,
        calls=[CallSeen(at=at, department=department, purpose_category=category) for at, department, category in calls],
        code_matches=None if code is None else row["code_check"] == "matched")


def _checked(row: asyncpg.Record) -> list[CallChecked]:
    """The calls to record as checked: the one whose reference matched, else each case's latest call."""
    check: CodeCheck = row["code_check"]
    if check == "matched":
        return [CallChecked(case_id=row["fit_case"], contact_id=row["fit_contact"], code=check)]
    latest: dict[UUID, UUID] = {}
    for case_id, contact_id in zip(row["call_cases"] or (), row["call_contacts"] or (), strict=True):  # newest first
        latest.setdefault(case_id, contact_id)
    return [CallChecked(case_id=case_id, contact_id=contact_id, code=check) for case_id, contact_id in latest.items()]


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
