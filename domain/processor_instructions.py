"""What a decision asks of the card processor: instructions, derived from events alone.

CONTRACT.md ("Effects") fixes the processor's API. A `CardSuspended` asks for a
SUSPENDED card transition; a `ReplacementCardIssued` for a new card and then
the old card TERMINATED, in that order; a `PaymentStopped` for a spend control
on each card it names. Every call carries a token made from the id of the
event that caused it (its second call: that id with `-2`, and so on), so a
call sent again after any crash is the same call and the processor applies it
once. The follower that sends them, the case view that lists them and the
case state all derive them here, so they cannot disagree.

An event's id is a UUID derived from its stream and version (the store keeps
no other); the token writes it as 32 hex digits, so `-2` still fits the
processor's 36 characters.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID, uuid5

import msgspec

from . import events as ev
from .values import Delivery, InstructionKind, StopScope

CardState = Literal["SUSPENDED", "TERMINATED", "ACTIVE"]
CallPath = Literal["/cardtransitions", "/cards", "/spendcontrols"]
TOKEN_MAX = 36


class CardTransition(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """POST /cardtransitions."""

    token: str
    card_token: str
    state: CardState
    reason_code: str
    reason: str
    channel: Literal["FRAUD"] = "FRAUD"


class NewCard(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """POST /cards."""

    token: str
    replaces_card_token: str
    new_card_token: str
    expedite: bool
    fulfillment: Delivery


class SpendControl(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """POST /spendcontrols."""

    token: str
    card_token: str
    scope: StopScope
    merchant: str | None = None


Call = CardTransition | NewCard | SpendControl


class ProcessorInstruction(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One call to make: where, with what body, and which card of which case it concerns."""

    token: str
    instruction: InstructionKind
    case_id: UUID
    card_id: str
    path: CallPath
    call: Call


def event_id(event: ev.CaseEvent) -> UUID:
    """The event's stable id: the same for every reader, before and after any restart."""
    return uuid5(event.originator_id, str(event.originator_version))


def token_for(event: ev.CaseEvent, call: int = 1) -> str:
    """The token of the event's `call`-th processor call (1: the event id itself)."""
    base = event_id(event).hex
    return base if call == 1 else f"{base}-{call}"


def is_permanent_refusal(status: int) -> bool:
    """A 4xx other than 408, 409 and 429: sending it again would be refused again."""
    return 400 <= status < 500 and status not in (408, 409, 429)


def instructions_for(event: ev.CaseEvent) -> list[ProcessorInstruction]:
    """The processor calls an event causes, in the order they must be made (none for most)."""
    if isinstance(event, ev.CardSuspended):
        return [_suspend(event)]
    if isinstance(event, ev.ReplacementCardIssued):
        return _replace(event)
    if isinstance(event, ev.PaymentStopped):
        return _stop(event)
    return []


def _instruction(event: ev.CaseEvent, kind: InstructionKind, card_id: str, path: CallPath,
                 call: Call) -> ProcessorInstruction:
    return ProcessorInstruction(token=call.token, instruction=kind, case_id=event.originator_id,
                                card_id=card_id, path=path, call=call)


def _suspend(e: ev.CardSuspended) -> ProcessorInstruction:
    call = CardTransition(token=token_for(e), card_token=e.card_id, state="SUSPENDED",
                          reason_code="fraud_suspected", reason=e.reason[:255])
    return _instruction(e, "suspend_card", e.card_id, "/cardtransitions", call)


def _replace(e: ev.ReplacementCardIssued) -> list[ProcessorInstruction]:
    new = NewCard(token=token_for(e), replaces_card_token=e.old_card_id, new_card_token=e.new_card_id,
                  expedite=e.expedited, fulfillment=e.delivery)
    old = CardTransition(token=token_for(e, 2), card_token=e.old_card_id, state="TERMINATED",
                         reason_code="card_replaced", reason=f"replaced by {e.new_card_id}")
    return [
        _instruction(e, "issue_replacement", e.new_card_id, "/cards", new),
        _instruction(e, "terminate_card", e.old_card_id, "/cardtransitions", old),
    ]


def _stop(e: ev.PaymentStopped) -> list[ProcessorInstruction]:
    return [
        _instruction(e, "stop_payments", card_id, "/spendcontrols",
                     SpendControl(token=token_for(e, n), card_token=card_id, scope=e.scope, merchant=e.merchant))
        for n, card_id in enumerate(e.card_ids, 1)
    ]
