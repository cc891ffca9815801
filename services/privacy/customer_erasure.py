"""Erasing a customer's personal data: record it on each case, then destroy their key.

The order matters. `CustomerDataErased` is recorded on every case of the customer
first (who, when, why: the skeleton keeps its own account), then, in one
transaction, the customer's keys are destroyed, every process is told (NOTIFY)
and lookup forgets the cases' digests. Stopped half-way, a second call finishes
it; once done, a second call records nothing and answers the same.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from uuid import UUID

import asyncpg
import msgspec

from casedesk.domain.decisions_erasure import check_erasure_reason, erase_customer_data
from casedesk.domain.values import Actor
from casedesk.projections.customer_lookup import customers_all_resolved_before, forget_cases
from casedesk.services.case_service import CaseNotFoundError, CaseService
from casedesk.services.privacy.customer_keys import (
    CustomerKeys,
    cases_of,
    destroy_keys,
    erasure_of,
    has_live_key,
    with_live_key,
)

PRIVACY_DEPARTMENT = "privacy"  # the department an erasure is recorded under (no case queue is its)


class UnknownCustomerError(LookupError):
    """No case and no key was ever made for this customer id."""


class Erasure(msgspec.Struct, frozen=True, kw_only=True):
    """POST /v1/customers/{customer_id}/erasure: whose data, on which cases, since when."""

    customer_id: str
    cases: list[UUID]
    erased_at: datetime


async def erase_customer(cases: CaseService, keys: CustomerKeys, actor: Actor, customer_id: str,
                         reason: str) -> Erasure:
    """Erase the customer's personal data on all their cases (idempotent)."""
    check_erasure_reason(reason)  # before anything: a refusal changes nothing
    pool = cases.store.pool
    case_ids = await cases_of(pool, customer_id)
    ever_keyed, last_erased = await erasure_of(pool, customer_id)
    if not case_ids and not ever_keyed:
        raise UnknownCustomerError(customer_id)
    data_since = await has_live_key(pool, customer_id)  # personal data sealed since the last erasure (or ever)
    erase = partial(erase_customer_data, reason=reason, since_key_erased=data_since and last_erased is not None)
    for case_id in case_ids:
        try:
            await cases.record_for_system(actor, case_id, erase)
        except CaseNotFoundError:
            continue  # linked when its first event was sealed, but that append never committed
    at = cases.clock()
    async with pool.acquire() as conn, conn.transaction():
        destroyed = await destroy_keys(conn, customer_id, at, actor.id, reason)
        await forget_cases(conn, case_ids)
    keys.forget([customer_id], destroyed)
    return Erasure(customer_id=customer_id, cases=case_ids,
                   erased_at=at if destroyed or last_erased is None else last_erased)


async def customers_resolved_before(pool: asyncpg.Pool, before: datetime) -> list[str]:
    """Customers whose every case was resolved before `before` and who still have a live key (retention)."""
    found = await customers_all_resolved_before(pool, before)
    return await with_live_key(pool, found)
