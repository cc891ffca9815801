"""Four eyes: given a disputed charge, when money above the approval limit is given away, a second person decides.

The dispute here is JPY 190,000; the limits are JPY 100,000 and USD 1,000
(domain/approval_policy.py's defaults, or the ones named in a test).
"""

from datetime import timedelta
from uuid import UUID

import msgspec
import pytest

from casedesk.domain import events as ev
from casedesk.domain.approval_policy import APPROVAL_WINDOW, approval_limits
from casedesk.domain.decisions import (
    approve,
    expire_approval,
    grant_provisional_credit,
    reject_approval,
    resolve_dispute,
    waive_liability,
)
from casedesk.domain.values import Actor, CreditAsked, Money, WaiverAsked

from .story import AGENT, CALL, DISPUTE, NOW, SUPERVISOR, VERIFIED_CALL, _stamp, disputed, given, jpy

CREDIT = UUID(int=95)
OTHER_SUPERVISOR = Actor(id="sup-2", name="Jun Ito", role="supervisor", department="fraud")
SYSTEM = Actor(id="system:approvals", name="casedesk", role="system", department="")


def big_dispute(amount: str = "190000") -> ev.ChargeDisputed:
    return msgspec.structs.replace(disputed(), amount=jpy(amount))


def waiver(amount: Money | None = None) -> dict[str, object]:
    return dict(contact_id=CALL, dispute_id=DISPUTE, note="confirmed fraud", amount=amount)


def credit(amount: str = "190000") -> dict[str, object]:
    return dict(credit_id=CREDIT, dispute_id=DISPUTE, amount=jpy(amount), contact_id=CALL)


def asked_waiver(*before: ev.CaseEvent) -> tuple[list[ev.CaseEvent], UUID]:
    """The story so far and a waiver of the whole JPY 190,000 waiting for approval (its id)."""
    story = given(*VERIFIED_CALL, big_dispute(), *before)
    [request] = story.when(waive_liability, **waiver()).then(ev.ApprovalRequested)
    assert isinstance(request, ev.ApprovalRequested)
    return [*story.history, request], request.approval_id


def asked_credit() -> tuple[list[ev.CaseEvent], UUID]:
    story = given(*VERIFIED_CALL, big_dispute())
    [request] = story.when(grant_provisional_credit, **credit()).then(ev.ApprovalRequested)
    assert isinstance(request, ev.ApprovalRequested)
    return [*story.history, request], request.approval_id


# --- when asked --------------------------------------------------------------


def test_a_waiver_above_the_limit_is_not_granted_but_asked_for_with_what_was_asked() -> None:
    [request] = given(*VERIFIED_CALL, big_dispute()).when(waive_liability, **waiver()).then(ev.ApprovalRequested)
    assert isinstance(request, ev.ApprovalRequested) and isinstance(request.command, WaiverAsked)
    assert (request.kind, request.amount, request.limit) == ("liability_waiver", jpy("190000"), jpy("100000"))
    assert (request.requested_by, request.contact_id, request.command.note) == (AGENT, CALL, "confirmed fraud")
    assert request.expires_at == NOW + APPROVAL_WINDOW == NOW + timedelta(hours=72)


def test_a_credit_above_the_limit_is_asked_for_with_its_credit_id() -> None:
    [request] = given(*VERIFIED_CALL, big_dispute()).when(grant_provisional_credit, **credit()).then(
        ev.ApprovalRequested)
    assert isinstance(request, ev.ApprovalRequested) and isinstance(request.command, CreditAsked)
    assert (request.kind, request.command.credit_id, request.amount) == ("provisional_credit", CREDIT, jpy("190000"))


def test_below_and_equal_to_the_limit_the_agent_grants_at_once() -> None:
    given(*VERIFIED_CALL, big_dispute()).when(grant_provisional_credit, **credit("99999")).then(
        ev.ProvisionalCreditGranted)
    given(*VERIFIED_CALL, big_dispute()).when(grant_provisional_credit, **credit("100000")).then(
        ev.ProvisionalCreditGranted)
    given(*VERIFIED_CALL, big_dispute()).when(grant_provisional_credit, **credit("100001")).then(
        ev.ApprovalRequested)
    given(*VERIFIED_CALL, big_dispute()).when(waive_liability, **waiver(jpy("100000"))).then(
        ev.CustomerLiabilityWaived)


def test_a_waiver_without_an_amount_is_judged_by_the_disputed_amount() -> None:
    given(*VERIFIED_CALL, big_dispute("100000")).when(waive_liability, **waiver()).then(ev.CustomerLiabilityWaived)
    given(*VERIFIED_CALL, big_dispute("100001")).when(waive_liability, **waiver()).then(ev.ApprovalRequested)


def test_each_currency_has_its_own_limit() -> None:
    limits = approval_limits("USD:1000")
    # JPY 5,000 is above 1,000 as a number, but within JPY's own limit.
    given(*VERIFIED_CALL, big_dispute()).when(grant_provisional_credit, **credit("5000"), limits=limits).then(
        ev.ProvisionalCreditGranted)
    usd = msgspec.structs.replace(disputed(), amount=Money(amount="5000.00", currency="USD"))
    usd_credit = dict(credit_id=CREDIT, dispute_id=DISPUTE, amount=Money(amount="1000.01", currency="USD"))
    given(*VERIFIED_CALL, usd).when(grant_provisional_credit, **usd_credit, limits=limits).then(
        ev.ApprovalRequested)
    strict = approval_limits("JPY:1000")
    given(*VERIFIED_CALL, big_dispute()).when(grant_provisional_credit, **credit("5000"), limits=strict).then(
        ev.ApprovalRequested)


def test_a_currency_with_no_limit_waits_for_approval_whatever_the_amount() -> None:
    krw = msgspec.structs.replace(disputed(), amount=Money(amount="500", currency="KRW"))
    asked = dict(credit_id=CREDIT, dispute_id=DISPUTE, amount=Money(amount="1", currency="KRW"))
    [request] = given(*VERIFIED_CALL, krw).when(grant_provisional_credit, **asked).then(ev.ApprovalRequested)
    assert isinstance(request, ev.ApprovalRequested) and request.limit == Money(amount="0", currency="KRW")


@pytest.mark.parametrize("setting", ["JPY", "JPY:abc", "JPY:-1", "XXQ:100", "JPY:1.5", "USD:1.005", "JPY:1e5"])
def test_an_unusable_limit_setting_is_refused_saying_what_is_wrong(setting: str) -> None:
    with pytest.raises(ValueError) as refusal:
        approval_limits(setting)
    assert setting.partition(":")[2] in str(refusal.value) or setting.partition(":")[0] in str(refusal.value)


def test_a_limit_setting_replaces_only_the_currencies_it_names() -> None:
    limits = approval_limits("JPY:200000, USD:500.50")
    assert limits.limit_for("JPY") == jpy("200000") and limits.limit_for("USD").amount == "500.50"
    assert limits.limit_for("EUR").amount == "1000"


# --- when approved -------------------------------------------------------------


def test_another_supervisor_approves_and_the_waiver_is_granted_naming_both() -> None:
    history, approval_id = asked_waiver()
    granted, waived = given(*history).when(approve, approval_id=approval_id, note="ok", actor=SUPERVISOR).then(
        ev.ApprovalGranted, ev.CustomerLiabilityWaived)
    assert isinstance(waived, ev.CustomerLiabilityWaived) and isinstance(granted, ev.ApprovalGranted)
    assert (waived.approved_by, waived.requested_by, waived.approval_id) == (SUPERVISOR, AGENT, approval_id)
    assert (waived.actor, waived.contact_id, waived.amount, waived.dispute_id) == (SUPERVISOR, CALL, None, DISPUTE)
    assert granted.requested_by == AGENT


def test_an_approved_credit_is_granted_with_the_credit_id_asked_for() -> None:
    history, approval_id = asked_credit()
    _, credited = given(*history).when(approve, approval_id=approval_id, note="ok", actor=SUPERVISOR).then(
        ev.ApprovalGranted, ev.ProvisionalCreditGranted)
    assert isinstance(credited, ev.ProvisionalCreditGranted)
    assert (credited.credit_id, credited.amount, credited.approved_by) == (CREDIT, jpy("190000"), SUPERVISOR)


def test_the_requester_approving_their_own_request_is_refused_as_same_person() -> None:
    history, approval_id = asked_waiver()
    given(*history).when(approve, approval_id=approval_id, note="mine", actor=AGENT).refused("same-person")
    as_supervisor = Actor(id=AGENT.id, name=AGENT.name, role="supervisor", department="fraud")
    given(*history).when(approve, approval_id=approval_id, note="mine", actor=as_supervisor).refused("same-person")


def test_an_approval_of_a_dispute_resolved_meanwhile_is_refused_as_dispute_already_resolved() -> None:
    history, approval_id = asked_waiver()
    resolved = ev.DisputeResolved(**_stamp(NOW), dispute_id=DISPUTE, outcome="rejected", note="merchant proved it")
    given(*history, resolved).when(approve, approval_id=approval_id, note="ok", actor=SUPERVISOR).refused(
        "dispute-already-resolved")


def test_an_approval_of_a_credit_granted_meanwhile_is_refused_as_credit_above_disputed_amount() -> None:
    history, approval_id = asked_credit()
    small = ev.ProvisionalCreditGranted(**_stamp(NOW), credit_id=UUID(int=96), dispute_id=DISPUTE, amount=jpy("1"))
    given(*history, small).when(approve, approval_id=approval_id, note="ok", actor=SUPERVISOR).refused(
        "credit-above-disputed-amount")
    done = given(*history).when(resolve_dispute, dispute_id=DISPUTE, outcome="upheld", note="won").then(
        ev.DisputeResolved)
    given(*history, *done).when(approve, approval_id=approval_id, note="ok", actor=SUPERVISOR).refused(
        "dispute-already-resolved")


def test_an_approval_of_a_waiver_given_meanwhile_is_refused_as_liability_already_waived() -> None:
    history, approval_id = asked_waiver()
    waived = ev.CustomerLiabilityWaived(**_stamp(NOW), dispute_id=DISPUTE, note="small part", amount=jpy("10"))
    given(*history, waived).when(approve, approval_id=approval_id, note="ok", actor=SUPERVISOR).refused(
        "liability-already-waived")


def test_an_approval_decided_already_is_refused_as_approval_already_decided() -> None:
    history, approval_id = asked_waiver()
    decided = given(*history).when(reject_approval, approval_id=approval_id, note="no", actor=SUPERVISOR).then(
        ev.ApprovalRejected)
    given(*history, *decided).when(approve, approval_id=approval_id, note="ok", actor=OTHER_SUPERVISOR).refused(
        "approval-already-decided")


def test_an_approval_not_on_the_case_is_refused_as_unknown_approval() -> None:
    history, _ = asked_waiver()
    given(*history).when(approve, approval_id=UUID(int=404), note="ok", actor=SUPERVISOR).refused("unknown-approval")


# --- when rejected or expired -------------------------------------------------


def test_a_rejection_gives_nothing_and_names_the_requester() -> None:
    history, approval_id = asked_waiver()
    story = given(*history).when(reject_approval, approval_id=approval_id, note="not fraud", actor=SUPERVISOR)
    [rejected] = story.then(ev.ApprovalRejected)
    assert isinstance(rejected, ev.ApprovalRejected) and rejected.requested_by == AGENT
    assert story.after is not None and not story.after.disputes[str(DISPUTE)].liability_waived


def test_72_hours_after_the_request_it_can_no_longer_be_decided_and_expires() -> None:
    history, approval_id = asked_waiver()
    late = NOW + timedelta(hours=72)
    given(*history).when(approve, approval_id=approval_id, note="ok", actor=SUPERVISOR,
                         at=late - timedelta(seconds=1)).then(ev.ApprovalGranted, ev.CustomerLiabilityWaived)
    given(*history).when(approve, approval_id=approval_id, note="ok", actor=SUPERVISOR, at=late).refused(
        "approval-expired")
    given(*history).when(reject_approval, approval_id=approval_id, note="no", actor=SUPERVISOR, at=late).refused(
        "approval-expired")
    [expired] = given(*history).when(expire_approval, approval_id=approval_id, actor=SYSTEM, at=late).then(
        ev.ApprovalExpired)
    assert isinstance(expired, ev.ApprovalExpired) and expired.actor == SYSTEM and expired.requested_by == AGENT


def test_expiry_records_nothing_before_it_is_due_or_once_decided() -> None:
    history, approval_id = asked_waiver()
    given(*history).when(expire_approval, approval_id=approval_id, actor=SYSTEM,
                         at=NOW + timedelta(hours=71)).then()
    decided = given(*history).when(approve, approval_id=approval_id, note="ok", actor=SUPERVISOR).then(
        ev.ApprovalGranted, ev.CustomerLiabilityWaived)
    given(*history, *decided).when(expire_approval, approval_id=approval_id, actor=SYSTEM,
                                   at=NOW + timedelta(hours=73)).then()
