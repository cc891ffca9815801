"""Decisions on the card processor's answers: record a confirmation or a refusal, once.

casedesk itself takes these (the actor is the system, not an agent), on
resolved cases too: what the processor did is a fact whatever the case's
status. An answer for a token already answered records nothing, so a sender
that crashed after the processor answered, or after the answer was stored,
can ask again and record again without ever writing it twice.
"""

from __future__ import annotations

from datetime import datetime

from . import events as ev
from .card_data import redact_card_numbers as redact
from .case import FraudCase
from .guards import Stamps
from .processor_instructions import is_permanent_refusal
from .values import Actor, InstructionKind

REFERENCE_MAX, CODE_MAX, REASON_MAX = 100, 100, 500


def confirm_instruction(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    instruction: InstructionKind,
    token: str,
    card_id: str,
    processor_reference: str,
    applied_at: datetime,
) -> list[ev.CaseEvent]:
    """The processor applied the instruction `token` at `applied_at`."""
    if token in case.answered_instructions:
        return []
    stamp = Stamps(case.id, case.version, actor, at, None).next()
    return [ev.ProcessorInstructionConfirmed(
        **stamp, instruction=instruction, token=token, card_id=card_id, last4=_last4(case, card_id),
        processor_reference=redact(processor_reference)[:REFERENCE_MAX], at=applied_at)]


def reject_instruction(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    instruction: InstructionKind,
    token: str,
    card_id: str,
    status: int,
    code: str,
    reason: str,
) -> list[ev.CaseEvent]:
    """The processor refused the instruction `token` for good (HTTP `status`, its `code` and `reason`)."""
    if not is_permanent_refusal(status):
        raise ValueError(f"HTTP {status} is not a refusal for good; the instruction is sent again")
    if token in case.answered_instructions:
        return []
    stamp = Stamps(case.id, case.version, actor, at, None).next()
    # Text from another system: redacted like any free text before it becomes an event.
    return [ev.ProcessorInstructionRejected(
        **stamp, instruction=instruction, token=token, card_id=card_id, last4=_last4(case, card_id),
        status=status, code=redact(code)[:CODE_MAX], reason=redact(reason)[:REASON_MAX])]


def _last4(case: FraudCase, card_id: str) -> str:
    card = case.cards.get(card_id)
    return card.last4 if card is not None else "????"
