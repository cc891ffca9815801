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
from .approval_policy import DEFAULT_APPROVAL_LIMITS, ApprovalLimits, approval_requested
from .card_data import redact_card_numbers as redact
from .case import FraudCase
from .errors import RuleViolation
from .guards import Stamps, stamps, still_open
from .money_rules import check_amount
from .values import Actor, CreditAsked, Money


def grant_provisional_credit(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    credit_id: UUID,
    dispute_id: UUID,
    amount: Money,
    contact_id: UUID | None = None,
    limits: ApprovalLimits = DEFAULT_APPROVAL_LIMITS,
) -> list[ev.CaseEvent]:
    """Credit the customer for an open dispute, up to what is disputed and not yet credited.

    Above the approval limit for its currency the credit is not granted: it waits
    for a supervisor's approval (`ApprovalRequested`, domain/decisions_approvals.py).
    """
    still_open(case)
    check_amount("amount", amount)
    asked = CreditAsked(credit_id=credit_id, dispute_id=dispute_id, amount=amount)
    credit_holds(case, asked)
    if contact_id is not None and case.contact(contact_id) is None:
        raise RuleViolation("unknown-contact", f"contact {contact_id} is not on this case")
    stamp = stamps(case, actor, at, contact_id)
    limit = limits.exceeded_by(amount)
    if limit is not None:
        return [approval_requested(stamp, case.id, command=asked, amount=amount, limit=limit, actor=actor, at=at)]
    return [credit_granted(stamp, asked)]


def credit_holds(case: FraudCase, asked: CreditAsked) -> None:
    """The rules a credit meets when asked for, and again when it is approved (the case may have moved)."""
    still_open(case)
    dispute = case.disputes.get(str(asked.dispute_id))
    if dispute is None:
        raise RuleViolation("unknown-dispute", f"dispute {asked.dispute_id} is not on this case")
    if dispute.outcome is not None:
        raise RuleViolation("dispute-already-resolved", f"dispute {asked.dispute_id} is resolved")
    if asked.amount.currency != dispute.amount.currency:
        raise RuleViolation("credit-currency-mismatch",
                            f"the dispute is in {dispute.amount.currency}, not {asked.amount.currency}")
    credited = sum((c.amount.decimal() for c in case.provisional_credits.values()
                    if c.dispute_id == str(asked.dispute_id) and not c.reversed), Decimal(0))
    if credited + asked.amount.decimal() > dispute.amount.decimal():
        raise RuleViolation("credit-above-disputed-amount",
                            f"{dispute.amount.amount} {dispute.amount.currency} is disputed and"
                            f" {credited} already credited")
    if str(asked.credit_id) in case.provisional_credits:
        raise RuleViolation("duplicate-credit", f"credit {asked.credit_id} already exists")


def credit_granted(stamp: Stamps, asked: CreditAsked, *, approval_id: UUID | None = None,
                   approved_by: Actor | None = None, requested_by: Actor | None = None) -> ev.ProvisionalCreditGranted:
    return ev.ProvisionalCreditGranted(**stamp.next(), credit_id=asked.credit_id, dispute_id=asked.dispute_id,
                                       amount=asked.amount, approval_id=approval_id, approved_by=approved_by,
                                       requested_by=requested_by)


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
