"""Decisions about charges: transaction review, disputes, liability, payment stops."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from uuid import UUID

from . import events as ev
from .approval_policy import DEFAULT_APPROVAL_LIMITS, ApprovalLimits, approval_requested
from .card_data import redact_card_numbers as redact
from .case import FraudCase
from .dispute_reasons import check_reason_code
from .errors import RuleViolation
from .guards import Stamps, no_card_data, stamps, still_open, verified_contact
from .money_rules import check_amount
from .values import (
    Actor,
    DisputeOutcome,
    DisputeStage,
    Money,
    NoticeChannel,
    NoticeSubject,
    ReviewedTransaction,
    StopScope,
    WaiverAsked,
    WaiverFinality,
)


def review_transactions(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    contact_id: UUID,
    transactions: Sequence[ReviewedTransaction],
) -> list[ev.CaseEvent]:
    """Record the customer's answer for each transaction walked through.

    Reading transactions out discloses account data, so like the sensitive
    actions it needs a passed identity check in the open contact.
    """
    still_open(case)
    verified_contact(case, contact_id)
    if not transactions:
        raise RuleViolation("no-transactions", "name at least one reviewed transaction")
    for n, t in enumerate(transactions):
        no_card_data(transaction_id=t.transaction_id, merchant=t.merchant)
        check_amount(f"transactions[{n}].amount", t.amount)
    ids = [t.transaction_id for t in transactions]
    if len(set(ids)) != len(ids):
        raise RuleViolation("duplicate-transaction", "each transaction is reviewed once a call")
    stamp = stamps(case, actor, at, contact_id)
    return [ev.TransactionReviewed(**stamp.next(), transaction=t) for t in transactions]


def dispute_charge(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    contact_id: UUID,
    dispute_id: UUID,
    transaction_id: str,
    merchant: str,
    amount: Money,
    reason_code: str,
    network: str,
    transaction_date: date | None = None,
    foreign: bool = False,
    point_of_sale: bool = False,
) -> list[ev.CaseEvent]:
    """Dispute a charge with the network (sensitive); one dispute per transaction.

    The transaction date starts the network's filing clock; `foreign` and
    `point_of_sale` give a debit dispute longer to investigate under Regulation E.
    """
    still_open(case)
    verified_contact(case, contact_id)
    no_card_data(
        transaction_id=transaction_id, merchant=merchant, reason_code=reason_code, network=network
    )
    if transaction_id in case.disputed_transactions:
        raise RuleViolation(
            "duplicate-dispute", f"transaction {transaction_id} is already disputed"
        )
    if str(dispute_id) in case.disputes:
        raise RuleViolation("duplicate-dispute", f"dispute {dispute_id} already exists")
    check_amount("amount", amount)
    check_reason_code(network, reason_code)
    if transaction_date is not None and transaction_date > at.date() + timedelta(days=1):
        # A day's grace: the charge's date is the merchant's, possibly a time zone ahead.
        raise RuleViolation("transaction-date-in-future", f"transaction date {transaction_date} has not come yet")
    return [
        ev.ChargeDisputed(
            **stamps(case, actor, at, contact_id).next(),
            dispute_id=dispute_id,
            transaction_id=transaction_id,
            merchant=merchant,
            amount=amount,
            reason_code=reason_code,
            network=network,
            transaction_date=transaction_date,
            foreign=foreign,
            point_of_sale=point_of_sale,
        )
    ]


def resolve_dispute(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    dispute_id: UUID,
    outcome: DisputeOutcome,
    note: str,
) -> list[ev.CaseEvent]:
    still_open(case)
    _known_dispute(case, dispute_id)
    if case.disputes[str(dispute_id)].outcome is not None:
        raise RuleViolation("dispute-already-resolved", f"dispute {dispute_id} is resolved")
    stamp = stamps(case, actor, at).next()
    return [ev.DisputeResolved(**stamp, dispute_id=dispute_id, outcome=outcome, note=redact(note))]


# Which stage may follow which; won, lost and withdrawn end the dispute.
_NEXT_STAGES: dict[DisputeStage | None, tuple[DisputeStage, ...]] = {
    None: ("filed", "withdrawn"),
    "filed": ("representment", "won", "withdrawn"),
    "representment": ("pre_arbitration", "won", "lost", "withdrawn"),
    "pre_arbitration": ("arbitration", "won", "lost", "withdrawn"),
    "arbitration": ("won", "lost"),
}
_ENDS: dict[DisputeStage, DisputeOutcome] = {"won": "upheld", "lost": "rejected", "withdrawn": "withdrawn"}


def record_dispute_stage(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    dispute_id: UUID,
    stage: DisputeStage,
    network_reference: str | None,
    note: str,
) -> list[ev.CaseEvent]:
    """Move a dispute a step through the network's lifecycle; a final stage also resolves it."""
    still_open(case)
    _known_dispute(case, dispute_id)
    dispute = case.disputes[str(dispute_id)]
    if dispute.outcome is not None:
        raise RuleViolation("dispute-already-resolved", f"dispute {dispute_id} is resolved")
    if stage not in _NEXT_STAGES.get(dispute.stage, ()):
        raise RuleViolation("dispute-stage-out-of-order", f"{stage} cannot follow {dispute.stage or 'the dispute'}")
    no_card_data(network_reference=network_reference)
    stamp = stamps(case, actor, at)
    events: list[ev.CaseEvent] = [ev.DisputeStageRecorded(
        **stamp.next(), dispute_id=dispute_id, stage=stage, network_reference=network_reference,
        note=redact(note))]
    if stage in _ENDS:
        events.append(ev.DisputeResolved(**stamp.next(), dispute_id=dispute_id, outcome=_ENDS[stage],
                                         note=redact(note)))
    return events


def waive_liability(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    contact_id: UUID,
    dispute_id: UUID | None,
    note: str,
    amount: Money | None = None,
    finality: WaiverFinality = "pending",
    limits: ApprovalLimits = DEFAULT_APPROVAL_LIMITS,
) -> list[ev.CaseEvent]:
    """Tell the customer they owe nothing, for one dispute or (None) the whole case.

    `amount` says how much is waived; `finality` whether for now (`pending`, while
    the dispute runs) or for good (`final`): a pending waiver may be made final.
    A waiver giving away more than the approval limit for its currency (its
    `amount`, else the disputed amount) waits for a supervisor's approval
    (`ApprovalRequested`, domain/decisions_approvals.py).
    """
    still_open(case)
    verified_contact(case, contact_id)
    if amount is not None:
        check_amount("amount", amount)
    asked = WaiverAsked(dispute_id=dispute_id, note=redact(note), amount=amount, finality=finality)
    waiver_holds(case, asked)
    stamp = stamps(case, actor, at, contact_id)
    given = waived_amount(case, asked)
    limit = limits.exceeded_by(given)
    if limit is not None and given is not None:
        return [approval_requested(stamp, case.id, command=asked, amount=given, limit=limit, actor=actor, at=at)]
    return [liability_waived(stamp, asked)]


def waiver_holds(case: FraudCase, asked: WaiverAsked) -> None:
    """The rules a waiver meets when asked for, and again when it is approved (the case may have moved)."""
    still_open(case)
    if asked.dispute_id is None:
        waived, final = case.case_liability_waived, case.case_liability_waiver_final
    else:
        _known_dispute(case, asked.dispute_id)
        dispute = case.disputes[str(asked.dispute_id)]
        waived, final = dispute.liability_waived, dispute.liability_waiver_final
    # A pending waiver may be made final once; nothing follows a final one.
    if waived and (final or asked.finality == "pending"):
        raise RuleViolation("liability-already-waived", "the customer's liability is waived")


def waived_amount(case: FraudCase, asked: WaiverAsked) -> Money | None:
    """What a waiver gives away: its amount, else the disputed amount (None: a whole case, amount unsaid)."""
    if asked.amount is not None or asked.dispute_id is None:
        return asked.amount
    return case.disputes[str(asked.dispute_id)].amount


def liability_waived(stamp: Stamps, asked: WaiverAsked, *, approval_id: UUID | None = None,
                     approved_by: Actor | None = None, requested_by: Actor | None = None
                     ) -> ev.CustomerLiabilityWaived:
    return ev.CustomerLiabilityWaived(**stamp.next(), dispute_id=asked.dispute_id, note=asked.note,
                                      amount=asked.amount, finality=asked.finality, approval_id=approval_id,
                                      approved_by=approved_by, requested_by=requested_by)


def stop_payments(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    contact_id: UUID,
    scope: StopScope,
    merchant: str | None = None,
) -> list[ev.CaseEvent]:
    """Stop charges from one merchant, all overseas, or all (sensitive)."""
    still_open(case)
    verified_contact(case, contact_id)
    no_card_data(merchant=merchant)
    if scope == "merchant" and not (merchant and merchant.strip()):
        raise RuleViolation("payment-stop-needs-merchant", "name the merchant to stop")
    if scope != "merchant" and merchant is not None:
        raise RuleViolation(
            "payment-stop-merchant-unexpected", f"a stop of {scope} charges names no merchant"
        )
    if any(s.scope == scope and _same_merchant(s.merchant, merchant) for s in case.payment_stops):
        raise RuleViolation("duplicate-payment-stop", "that payment stop is already in place")
    stamp = stamps(case, actor, at, contact_id).next()
    # Every card still in use gets the stop at the processor (replaced and destroyed ones are gone).
    in_use = tuple(cid for cid, card in case.cards.items() if card.state in ("active", "suspended"))
    return [ev.PaymentStopped(**stamp, scope=scope, merchant=merchant, card_ids=in_use)]


def notify_customer(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    channel: NoticeChannel,
    subject: NoticeSubject,
    summary: str,
) -> list[ev.CaseEvent]:
    """Record what the customer was told, and how (a letter, an email, a call).

    Telling the result of an investigation meets the regulator's clock for it;
    a resolved case may still be told (the result comes after the resolution).
    """
    if not summary.strip():
        raise RuleViolation("notice-needs-summary", "say what the customer was told")
    stamp = stamps(case, actor, at).next()
    return [ev.CustomerNotified(**stamp, channel=channel, subject=subject, summary=redact(summary))]


def _same_merchant(a: str | None, b: str | None) -> bool:
    # Descriptors differ in case and spacing between statements.
    return (a or "").strip().casefold() == (b or "").strip().casefold()


def _known_dispute(case: FraudCase, dispute_id: UUID) -> None:
    if str(dispute_id) not in case.disputes:
        raise RuleViolation("unknown-dispute", f"dispute {dispute_id} is not on this case")
