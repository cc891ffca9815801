"""The case_approvals table: every four-eyes approval across cases, one row each.

A waiver or credit above the approval limit is recorded on its case's stream
(`ApprovalRequested`, then `ApprovalGranted`, `ApprovalRejected` or
`ApprovalExpired`); this read model gathers them across cases for the
supervisors' list (GET /v1/approvals), for finding an approval's case when it
is decided, and for the expiry sweep. This module owns the table, how events
change it and its queries; the case_files projection writes it in each batch
(as it does case_clocks), so it moves with that projection's position (one
lock and one connection fewer than a projection of its own) and a rebuild
from zero writes the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from casedesk.domain import events as ev
from casedesk.domain.values import Money
from casedesk.projections.timeline.shapes import Person, person

STATES = ("pending", "approved", "rejected", "expired")
_encode = msgspec.json.Encoder().encode


def _json(value: object) -> str:
    return _encode(value).decode()


class ApprovalItem(msgspec.Struct, frozen=True, kw_only=True):
    """One approval as supervisors list it: what is asked, by whom, until when, and what became of it."""

    approval_id: UUID
    case_id: UUID
    kind: str
    state: str
    amount: Money
    limit: Money
    dispute_id: UUID | None
    command: dict[str, Any]
    requested_at: datetime
    requested_by: Person
    contact_id: UUID | None
    expires_at: datetime
    decided_at: datetime | None
    decided_by: Person | None
    decision_note: str | None


class ApprovalsAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """GET /v1/approvals: pending ones the first to expire first, decided ones the latest first."""

    items: list[ApprovalItem]


async def write_approvals(conn: asyncpg.Connection, events: Sequence[ev.CaseEvent]) -> None:
    """The approval rows a batch of events adds or decides (the case_files projection's batch writes them)."""
    asked = [e for e in events if isinstance(e, ev.ApprovalRequested)]
    if asked:  # before the decisions: a request and its decision may share a batch
        await conn.executemany(
            "INSERT INTO case_approvals (approval_id, case_id, kind, state, amount, approval_limit, dispute_id,"
            " command, requested_at, requested_by, contact_id, expires_at) VALUES"
            " ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (approval_id) DO NOTHING",
            [(e.approval_id, e.originator_id, e.kind, _json(e.amount), _json(e.limit), e.command.dispute_id,
              _json(e.command), e.timestamp, _json(person(e.requested_by)), e.contact_id, e.expires_at)
             for e in asked])
    decided = [_decision(e) for e in events
               if isinstance(e, (ev.ApprovalGranted, ev.ApprovalRejected, ev.ApprovalExpired))]
    if decided:
        await conn.executemany(
            "UPDATE case_approvals SET state = $2, decided_at = $3, decided_by = $4, decision_note = $5"
            " WHERE approval_id = $1", decided)


def _decision(e: ev.ApprovalGranted | ev.ApprovalRejected | ev.ApprovalExpired) -> tuple[Any, ...]:
    state = ("approved" if isinstance(e, ev.ApprovalGranted) else
             "rejected" if isinstance(e, ev.ApprovalRejected) else "expired")
    note = None if isinstance(e, ev.ApprovalExpired) else e.note
    return (e.approval_id, state, e.timestamp, _json(person(e.actor)), note)


# --- queries -----------------------------------------------------------------

_COLUMNS = ("approval_id, case_id, kind, state, amount, approval_limit, dispute_id, command, requested_at,"
            " requested_by, contact_id, expires_at, decided_at, decided_by, decision_note")
_decode_money = msgspec.json.Decoder(Money).decode
_decode_person = msgspec.json.Decoder(Person).decode


def _item(r: Any) -> ApprovalItem:
    return ApprovalItem(
        approval_id=r["approval_id"], case_id=r["case_id"], kind=r["kind"], state=r["state"],
        amount=_decode_money(r["amount"]), limit=_decode_money(r["approval_limit"]), dispute_id=r["dispute_id"],
        command=msgspec.json.decode(r["command"]), requested_at=r["requested_at"],
        requested_by=_decode_person(r["requested_by"]), contact_id=r["contact_id"], expires_at=r["expires_at"],
        decided_at=r["decided_at"], decided_by=_decode_person(r["decided_by"]) if r["decided_by"] else None,
        decision_note=r["decision_note"])


async def list_approvals(conn: Any, state: str | None, limit: int) -> list[ApprovalItem]:
    """Approvals in one state (all when None): pending first, the first to expire first; then the latest decided."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM case_approvals WHERE $1::text IS NULL OR state = $1"
        " ORDER BY state <> 'pending', CASE WHEN state = 'pending' THEN expires_at END,"
        " decided_at DESC NULLS LAST, approval_id LIMIT $2", state, limit)
    return [_item(r) for r in rows]


async def case_of_approval(conn: Any, approval_id: UUID) -> UUID | None:
    """The case an approval was asked for on; None for an id no request has had (yet, as projected)."""
    case_id: UUID | None = await conn.fetchval("SELECT case_id FROM case_approvals WHERE approval_id = $1",
                                               approval_id)
    return case_id


async def due_for_expiry(conn: Any, at: datetime, limit: int = 500) -> list[tuple[UUID, UUID]]:
    """(approval_id, case_id) of pending approvals whose 72 h have run out by `at`, the oldest first."""
    rows = await conn.fetch("SELECT approval_id, case_id FROM case_approvals WHERE state = 'pending'"
                            " AND expires_at <= $1 ORDER BY expires_at, approval_id LIMIT $2", at, limit)
    return [(r["approval_id"], r["case_id"]) for r in rows]
