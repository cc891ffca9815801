"""Decisions about four-eyes approvals: approve, reject, expire.

A waiver or a credit above the approval limit was recorded as
`ApprovalRequested` (domain/approval_policy.py). A supervisor who is not the
requester approves it: `ApprovalGranted` and the granted effect (the waiver or
the credit, naming `approved_by` and `requested_by`) in one append. Approval
runs the request's rules again on the case as it is then, so a request that no
longer holds (its dispute resolved meanwhile, the dispute credited since) is
refused by that rule's name and stays pending for a rejection. 72 h after the
request it can no longer be decided: `ApprovalExpired`, recorded by casedesk.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from . import events as ev
from .card_data import redact_card_numbers as redact
from .case import FraudCase
from .case_parts import PendingApproval
from .decisions_charges import liability_waived, waiver_holds
from .decisions_credits import credit_granted, credit_holds
from .errors import CaseMergedError, RuleViolation
from .guards import Stamps
from .values import Actor, CreditAsked


def approve(case: FraudCase, *, actor: Actor, at: datetime, approval_id: UUID, note: str) -> list[ev.CaseEvent]:
    """Grant what was asked, if the approver is another person and the request still holds."""
    approval = pending_approval(case, approval_id, at)
    if actor.id == approval.requested_by.id:
        raise RuleViolation("same-person", "the requester cannot approve their own request: another supervisor"
                                           " must")
    asked = approval.command
    stamp = _stamps(case, actor, at, approval)
    granted = ev.ApprovalGranted(**stamp.next(), approval_id=approval_id, note=redact(note),
                                 requested_by=approval.requested_by)
    if isinstance(asked, CreditAsked):
        credit_holds(case, asked)
        return [granted, credit_granted(stamp, asked, approval_id=approval_id, approved_by=actor,
                                        requested_by=approval.requested_by)]
    waiver_holds(case, asked)
    dispute = case.disputes.get(str(asked.dispute_id)) if asked.dispute_id is not None else None
    if approval.dispute_open and dispute is not None and dispute.outcome is not None:
        raise RuleViolation("dispute-already-resolved", f"dispute {asked.dispute_id} was resolved since the"
                                                         " waiver was asked for")
    return [granted, liability_waived(stamp, asked, approval_id=approval_id, approved_by=actor,
                                      requested_by=approval.requested_by)]


def reject_approval(case: FraudCase, *, actor: Actor, at: datetime, approval_id: UUID, note: str
                    ) -> list[ev.CaseEvent]:
    """Refuse what was asked: nothing is given (a requester may so withdraw their own request)."""
    approval = pending_approval(case, approval_id, at)
    return [ev.ApprovalRejected(**_stamps(case, actor, at, approval).next(), approval_id=approval_id,
                                note=redact(note), requested_by=approval.requested_by)]


def expire_approval(case: FraudCase, *, actor: Actor, at: datetime, approval_id: UUID) -> list[ev.CaseEvent]:
    """Record that a pending request went undecided past its 72 h; nothing when it is not (or no longer) due."""
    approval = case.approvals.get(str(approval_id))
    if approval is None or approval.status != "pending" or at < approval.expires_at:
        return []
    stamp = Stamps(case.id, case.version, actor, at, approval.contact_id)
    return [ev.ApprovalExpired(**stamp.next(), approval_id=approval_id, requested_by=approval.requested_by,
                               expires_at=approval.expires_at)]


def pending_approval(case: FraudCase, approval_id: UUID, at: datetime) -> PendingApproval:
    """The approval, while it can still be decided."""
    approval = case.approvals.get(str(approval_id))
    if approval is None:
        raise RuleViolation("unknown-approval", f"approval {approval_id} is not on this case")
    if approval.status != "pending":
        raise RuleViolation("approval-already-decided", f"approval {approval_id} is {approval.status}")
    if at >= approval.expires_at:
        raise RuleViolation("approval-expired", f"approval {approval_id} expired at {approval.expires_at.isoformat()}"
                                                " (72 h after it was asked for); ask again")
    return approval


def _stamps(case: FraudCase, actor: Actor, at: datetime, approval: PendingApproval) -> Stamps:
    """Stamps in the contact the request was made in (the approver is in none of the customer's)."""
    if case.merged_into is not None:
        raise CaseMergedError(case.id, case.merged_into)
    return Stamps(case.id, case.version, actor, at, approval.contact_id)
