"""Decisions about provisional credits: money given back while a dispute is investigated.

Regulation E lets the issuer take longer than 10 business days to investigate
a debit dispute only if it provisionally credits the customer within them; a
credit is for one open dispute, in its currency, and all of a dispute's
credits not reversed together never exceed the amount disputed.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from . import events as ev
from .card_data import redact_card_numbers as redact
from .case import FraudCase
from .errors import RuleViolation
from .guards import stamps, still_open
from .money_rules import check_amount
from .values import Actor, Money


def grant_provisional_credit(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    credit_id: UUID,
    dispute_id: UUID,
    amount: Money,
    contact_id: UUID | None = None,
) -> list[ev.CaseEvent]:
    """Credit the customer for an open dispute, up to what is disputed and not yet credited."""
    still_open(case)
    check_amount("amount", amount)
    dispute = case.disputes.get(str(dispute_id))
    if dispute is None:
        raise RuleViolation("unknown-dispute", f"dispute {dispute_id} is not on this case")
    if dispute.outcome is not None:
        raise RuleViolation("dispute-already-resolved", f"dispute {dispute_id} is resolved")
    if amount.currency != dispute.amount.currency:
        raise RuleViolation("credit-currency-mismatch",
                            f"the dispute is in {dispute.amount.currency}, not {amount.currency}")
    credited = sum((c.amount.decimal() for c in case.provisional_credits.values()
                    if c.dispute_id == str(dispute_id) and not c.reversed), Decimal(0))
    if credited + amount.decimal() > dispute.amount.decimal():
        raise RuleViolation("credit-above-disputed-amount",
                            f"{dispute.amount.amount} {dispute.amount.currency} is disputed and"
                            f" {credited} already credited")
    if contact_id is not None and case.contact(contact_id) is None:
        raise RuleViolation("unknown-contact", f"contact {contact_id} is not on this case")
    if str(credit_id) in case.provisional_credits:
        raise RuleViolation("duplicate-credit", f"credit {credit_id} already exists")
    # The four-eyes check goes here: above CASEDESK_APPROVAL_LIMIT a credit waits for a
    # supervisor's approval (202 with approval_id) instead of being granted at once.
    stamp = stamps(case, actor, at, contact_id).next()
    return [ev.ProvisionalCreditGranted(**stamp, credit_id=credit_id, dispute_id=dispute_id, amount=amount)]


def reverse_provisional_credit(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    credit_id: UUID,
    reason: str,
) -> list[ev.CaseEvent]:
    """Take a provisional credit back, saying why (it is then no longer counted against the dispute)."""
    still_open(case)
    credit = case.provisional_credits.get(str(credit_id))
    if credit is None:
        raise RuleViolation("unknown-credit", f"credit {credit_id} is not on this case")
    if credit.reversed:
        raise RuleViolation("credit-already-reversed", f"credit {credit_id} is reversed")
    if not reason.strip():
        raise RuleViolation("reversal-needs-reason", "say why the credit is taken back")
    stamp = stamps(case, actor, at).next()
    return [ev.ProvisionalCreditReversed(**stamp, credit_id=credit_id, reason=redact(reason))]
