"""Decisions about erasing a customer's personal data (crypto-shredding).

Erasure is recorded, not done, here: `CustomerDataErased` on each of the
customer's cases says who erased, when and why; the service then destroys the
customer's data key, which turns every sealed personal field into "[erased]".
A merged case takes it too (its events are still the customer's data).
"""

from __future__ import annotations

from datetime import datetime

from . import events as ev
from .card_data import redact_card_numbers as redact
from .case import FraudCase
from .errors import RuleViolation
from .guards import Stamps
from .values import Actor


def erase_customer_data(
    case: FraudCase, *, actor: Actor, at: datetime, reason: str, since_key_erased: bool = False
) -> list[ev.CaseEvent]:
    """[CustomerDataErased], or nothing when the case already records its erasure.

    `since_key_erased`: personal data was written after the last erasure (under a
    new key), so this erasure is recorded again.
    """
    check_erasure_reason(reason)
    if case.personal_data_erased_at is not None and not since_key_erased:
        return []
    stamp = Stamps(case.id, case.version, actor, at, None).next()
    return [ev.CustomerDataErased(**stamp, customer_id=case.customer.customer_id, reason=redact(reason))]


def check_erasure_reason(reason: str) -> None:
    """An erasure says why (the record kept of it is all that is left)."""
    if not reason.strip():
        raise RuleViolation("erasure-needs-reason", "say why the customer's data is erased")
