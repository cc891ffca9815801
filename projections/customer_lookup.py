"""Customer lookup rows: who each case's customer is, and every outbound attempt.

Found by keyed digests of name and phone (never the clear values), so an agent
can tell a returning caller who called them, and when, before asking anything.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from casedesk.domain import events as ev
from casedesk.projections.timeline.shapes import CaseView


class CustomerRow(msgspec.Struct, kw_only=True):
    case_id: UUID
    customer_id: str
    name_masked: str
    name_key: str
    phone_key: str
    last4s: list[str]
    reason: str
    opened_at: datetime
    status: str
    resolved_at: datetime | None = None  # when last resolved: retention runs from it (issue 21)


class OutboundRow(msgspec.Struct, frozen=True, kw_only=True):
    contact_id: UUID
    case_id: UUID
    at: datetime
    phone_key: str
    department: str
    purpose: str | None
    agent_name: str
    purpose_category: str


def customer_row(event: ev.CaseOpened) -> CustomerRow:
    c = event.customer
    return CustomerRow(case_id=event.originator_id, customer_id=c.customer_id, name_masked=c.name_masked,
                       name_key=c.name_key, phone_key=c.phone.key, last4s=[k.last4 for k in event.cards],
                       reason=event.reason, opened_at=event.timestamp, status="open")


def change_customer(row: CustomerRow, event: ev.CaseEvent) -> None:
    if isinstance(event, ev.ReplacementCardIssued) and event.new_last4 not in row.last4s:
        row.last4s.append(event.new_last4)
    elif isinstance(event, ev.CaseResolved):
        row.status, row.resolved_at = "resolved", event.timestamp
    elif isinstance(event, ev.CaseReopened):
        row.status, row.resolved_at = "open", None


def lookup_follows_merge(row: CustomerRow, view: CaseView) -> None:
    """A merged-away case leaves lookup (status `merged`); its survivor is found by its cards too.

    Derived from the view after the merge or unmerge, so an unmerge restores
    both rows exactly: the survivor's own cards and status, the absorbed case's.
    """
    last4s = [c.last4 for c in view.cards] + [d for m in view.merged_cases for d in m.last4s]
    row.last4s = list(dict.fromkeys(last4s))
    row.status = "merged" if view.merged_into is not None else view.status


# What the IVR may tell a caller a call was about: a kind, never the agent's words (migration 016 too).
_CATEGORY_OF_REASON = {"lost_or_stolen": "lost_or_stolen_card", "data_breach": "card_replacement"}


def purpose_category(direction: str, case_reason: str) -> str:
    if direction == "callback":
        return "callback"
    return _CATEGORY_OF_REASON.get(case_reason, "card_security")


def outbound_row(event: ev.CaseEvent, case_reason: str) -> OutboundRow | None:
    """An outbound or callback call to a known number, else None."""
    if not isinstance(event, ev.ContactStarted) or event.direction == "inbound" or event.phone is None:
        return None
    assert event.contact_id is not None
    return OutboundRow(contact_id=event.contact_id, case_id=event.originator_id, at=event.timestamp,
                       phone_key=event.phone.key, department=event.department, purpose=event.purpose,
                       agent_name=event.actor.name,
                       purpose_category=purpose_category(event.direction, case_reason))


# --- queries -----------------------------------------------------------------


async def find_customers(conn: Any, *, name_key: str | None, phone_keys: list[str] | None,
                         last4: str | None) -> list[Any]:
    """Cases of the customers matching phone, name + phone, or name + last 4 digits.

    `phone_keys`: the number's digests, today's and the old rule's (services/personal_data.py).
    """
    return list(await conn.fetch(
        "SELECT * FROM case_customers WHERE ($1::text IS NULL OR name_key = $1)"
        " AND ($2::text[] IS NULL OR phone_key = ANY($2::text[])) AND ($3::text IS NULL OR $3 = ANY(last4s))"
        " ORDER BY opened_at DESC LIMIT 200", name_key, phone_keys, last4))


async def recent_outbound(conn: Any, phone_keys: list[str], limit: int = 20) -> list[Any]:
    """Outbound attempts to any of these numbers, newest first."""
    return list(await conn.fetch(
        "SELECT * FROM outbound_attempts WHERE phone_key = ANY($1::text[]) ORDER BY at DESC LIMIT $2",
        phone_keys, limit))


async def forget_cases(conn: Any, case_ids: list[UUID]) -> None:
    """An erased customer's digests leave lookup (issue 21): the cases' rows and outbound attempts."""
    await conn.execute("DELETE FROM case_customers WHERE case_id = ANY($1::uuid[])", case_ids)
    await conn.execute("DELETE FROM outbound_attempts WHERE case_id = ANY($1::uuid[])", case_ids)


async def customers_all_resolved_before(conn: Any, before: datetime) -> list[str]:
    """Customers whose every case still in lookup was resolved (or merged away) before `before`."""
    rows = await conn.fetch(
        "SELECT customer_id FROM case_customers GROUP BY customer_id"
        " HAVING bool_and(status = 'merged' OR (status = 'resolved' AND resolved_at < $1))"
        " AND bool_or(status = 'resolved')", before)
    return [r[0] for r in rows]


async def write_lookup(conn: asyncpg.Connection, customers: list[CustomerRow], outbound: list[OutboundRow]) -> None:
    """Upsert the cases' customer rows and add the outbound attempts the batch recorded."""
    if customers:
        # last4s travel comma-joined: unnest cannot take an array of arrays of different lengths.
        await conn.execute(
            "INSERT INTO case_customers (case_id, customer_id, name_masked, name_key, phone_key, last4s, reason,"
            " opened_at, status, resolved_at) SELECT c, i, m, nk, pk, string_to_array(l, ','), r, o, s, ra"
            " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
            " $8::timestamptz[], $9::text[], $10::timestamptz[]) AS x(c, i, m, nk, pk, l, r, o, s, ra)"
            " ON CONFLICT (case_id) DO UPDATE"
            " SET last4s = excluded.last4s, status = excluded.status, resolved_at = excluded.resolved_at",
            [c.case_id for c in customers], [c.customer_id for c in customers], [c.name_masked for c in customers],
            [c.name_key for c in customers], [c.phone_key for c in customers],
            [",".join(c.last4s) for c in customers], [c.reason for c in customers],
            [c.opened_at for c in customers], [c.status for c in customers], [c.resolved_at for c in customers],
        )
    if outbound:
        await conn.execute(
            "INSERT INTO outbound_attempts (contact_id, case_id, at, phone_key, department, purpose, agent_name,"
            " purpose_category) SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[],"
            " $5::text[], $6::text[], $7::text[], $8::text[]) ON CONFLICT (contact_id) DO NOTHING",
            [o.contact_id for o in outbound], [o.case_id for o in outbound], [o.at for o in outbound],
            [o.phone_key for o in outbound], [o.department for o in outbound], [o.purpose for o in outbound],
            [o.agent_name for o in outbound], [o.purpose_category for o in outbound],
        )


async def customer_rows(conn: asyncpg.Connection, case_ids: list[UUID]) -> dict[UUID, CustomerRow]:
    """The stored customer rows of these cases (those that have one), to change in a batch."""
    return {r["case_id"]: CustomerRow(**dict(r))
            for r in await conn.fetch("SELECT * FROM case_customers WHERE case_id = ANY($1::uuid[])", case_ids)}
