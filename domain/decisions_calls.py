"""Decisions about our own calls as the customer sees them: checking that a call came from us."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from . import events as ev
from .case import FraudCase
from .errors import RuleViolation
from .guards import stamps
from .values import Actor, CodeCheck, VerificationChannel


def record_call_verified(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    contact_id: UUID,
    channel: VerificationChannel,
    code: CodeCheck,
) -> list[ev.CaseEvent]:
    """Record that the customer checked our call `contact_id`; a resolved case records it too.

    An impostor's attempt is as worth knowing after the case is closed as before.
    """
    contact = case.contact(contact_id)
    if contact is None or contact.direction == "inbound":
        raise RuleViolation("unknown-call", f"contact {contact_id} is not a call we placed on this case")
    stamp = stamps(case, actor, at, contact_id).next()
    return [ev.CallVerified(**stamp, channel=channel, call_at=contact.started_at, code=code)]
