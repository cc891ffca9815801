"""The parts a fraud case's state is made of: cards, contacts, disputes, callbacks.

Frozen msgspec Structs, replaced (never mutated) by `case.evolve`.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from .values import (
    Actor,
    ApprovalStatus,
    AskedCommand,
    CallbackStatus,
    CardKind,
    CardStatus,
    ContactChannel,
    ContactDirection,
    DisputeOutcome,
    DisputeStage,
    FeeBearer,
    IdentityMethod,
    Money,
    StopScope,
)


class CardState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A card on the case and where it stands."""

    last4: str
    network: str
    kind: CardKind
    primary_card_id: str | None
    state: CardStatus = "active"
    replaced_by: str | None = None


class ContactState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A contact, and whether the customer's identity currently stands verified in it."""

    direction: ContactDirection
    channel: ContactChannel
    to_registered_number: bool
    department: str
    started_at: datetime
    ended: bool = False
    verified_by: IdentityMethod | None = None


class DisputeState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A disputed charge and its outcome (None while open)."""

    transaction_id: str
    merchant: str
    amount: Money
    outcome: DisputeOutcome | None = None
    stage: DisputeStage | None = None
    liability_waived: bool = False
    liability_waiver_final: bool = False


class ProvisionalCredit(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Money credited to the customer for a dispute while it is investigated."""

    dispute_id: str
    amount: Money
    reversed: bool = False


class CallbackState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A promised callback."""

    due_at: datetime
    to_registered_number: bool
    department: str
    status: CallbackStatus = "scheduled"


class PaymentStop(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A standing stop on charges."""

    scope: StopScope
    merchant: str | None


class BreachFee(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Who pays for a reissue on a case whose card was in a merchant's data breach."""

    bearer: FeeBearer
    merchant: str | None


class Assignee(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The agent holding the case."""

    agent_id: str
    agent_name: str


class PendingApproval(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A request above the approval limit, and where it stands (pending until decided or expired).

    `dispute_open`: whether its dispute was open when it was asked (a dispute
    resolved since means the request no longer holds).
    """

    command: AskedCommand
    requested_by: Actor
    contact_id: UUID | None
    expires_at: datetime
    dispute_open: bool
    status: ApprovalStatus = "pending"
