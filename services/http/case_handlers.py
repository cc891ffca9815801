"""Handlers of the case commands: decode, name the decision, run it. No business ifs."""

from __future__ import annotations

import secrets
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID, uuid4

from aiohttp import web

from casedesk.domain import decisions as d
from casedesk.domain.breaches import record_compromise_of
from casedesk.domain.case import FraudCase
from casedesk.domain.decisions_merge import MAY_MERGE_ACROSS_CUSTOMERS
from casedesk.domain.events import CaseEvent
from casedesk.domain.values import Actor, Card, ContactStart, Customer, FeeAsked, ReviewedTransaction
from casedesk.services.case_service import Outcome
from casedesk.services.http import case_requests as rq
from casedesk.services.http.app_keys import APPROVAL_LIMITS, BREACHES, CALL_CODES, CASES, PERSONAL_DATA
from casedesk.services.http.approval_handlers import accepted_if_asked, approval_asked
from casedesk.services.http.commands import card_in_path, open_once, path_uuid, run, run_pair
from casedesk.services.http.middleware import PRINCIPAL
from casedesk.services.http.problems import FieldError, Problem, validation_problem
from casedesk.services.http.request_body import decode


async def open_case(request: web.Request) -> web.Response:
    body = await decode(request, rq.OpenCase)
    pii, case_id = request.app[PERSONAL_DATA], uuid4()
    c = body.customer
    customer = Customer(customer_id=c.customer_id, name_masked=pii.name_masked(c.name),
                        name_key=pii.name_key(c.name),
                        phone=pii.phone(c.registered_phone, field="customer.registered_phone"))
    contact = None
    if body.contact is not None:
        k = body.contact
        contact = ContactStart(contact_id=uuid4(), direction=k.direction, channel=k.channel,
                               phone=pii.phone(k.phone, field="contact.phone", compared=True) if k.phone else None,
                               department=k.department, purpose=k.purpose)
    cards = tuple(Card(card_id=x.card_id, last4=x.last4, network=x.network, kind=x.kind,
                       primary_card_id=x.primary_card_id, product=x.product) for x in body.cards)
    if body.alert_id is not None:  # the fraud engine's alert names its case: one case per alert
        case_id = d.alert_case_id(body.alert_id)
    decide = partial(d.open_case, case_id=case_id, customer=customer, cards=cards, reason=body.reason,
                     channel=body.channel, summary=body.summary, amount_at_risk=body.amount_at_risk,
                     contact=contact, alert_id=body.alert_id)
    if contact is None:
        return await open_once(request, case_id, decide)
    async with _reference(request, contact.contact_id, case_id, contact.direction) as code:
        return await open_once(request, case_id, decide,
                               extra=lambda _: {"contact_id": str(contact.contact_id), **_code_field(code)})


async def start_contact(request: web.Request) -> web.Response:
    body = await decode(request, rq.StartContact)
    contact_id, case_id, pii = uuid4(), path_uuid(request, "case_id"), request.app[PERSONAL_DATA]
    decide = partial(d.start_contact, contact_id=contact_id, direction=body.direction,
                     channel=body.channel, phone=pii.phone(body.phone, compared=True) if body.phone else None,
                     department=body.department, purpose=body.purpose)
    async with _reference(request, contact_id, case_id, body.direction) as code:
        return await run(request, case_id, decide, status=201,
                         extra=lambda _: {"contact_id": str(contact_id), **_code_field(code)})


def _reference(request: web.Request, contact_id: UUID, case_id: UUID,
               direction: str) -> AbstractAsyncContextManager[str | None]:
    """The reference the agent says on a call we place (withdrawn if the contact is refused)."""
    return request.app[CALL_CODES].for_call(dialling=direction != "inbound", contact_id=contact_id,
                                            case_id=case_id, at=request.app[CASES].clock())


def _code_field(code: str | None) -> dict[str, str]:
    return {"verification_code": code} if code is not None else {}


async def end_contact(request: web.Request) -> web.Response:
    body = await decode(request, rq.EndContact)
    decide = partial(d.end_contact, contact_id=path_uuid(request, "contact_id"),
                     outcome=body.outcome, summary=body.summary)
    return await run(request, path_uuid(request, "case_id"), decide)


async def check_identity(request: web.Request) -> web.Response:
    body = await decode(request, rq.CheckIdentity)
    decide = partial(d.check_identity, contact_id=body.contact_id, method=body.method,
                     passed=body.passed, factors=tuple(body.factors))
    return await run(request, path_uuid(request, "case_id"), decide)


async def unlock_identity(request: web.Request) -> web.Response:
    body = await decode(request, rq.UnlockIdentity)
    return await run(request, path_uuid(request, "case_id"), partial(d.unlock_identity, reason=body.reason))


async def review_transactions(request: web.Request) -> web.Response:
    body = await decode(request, rq.ReviewTransactions)
    reviewed = tuple(ReviewedTransaction(transaction_id=t.transaction_id, merchant=t.merchant,
                                         amount=t.amount, occurred_at=t.occurred_at, answer=t.answer)
                     for t in body.transactions)
    decide = partial(d.review_transactions, contact_id=body.contact_id, transactions=reviewed)
    return await run(request, path_uuid(request, "case_id"), decide)


async def dispute_charge(request: web.Request) -> web.Response:
    body = await decode(request, rq.DisputeCharge)
    dispute_id = uuid4()
    decide = partial(d.dispute_charge, contact_id=body.contact_id, dispute_id=dispute_id,
                     transaction_id=body.transaction_id, merchant=body.merchant, amount=body.amount,
                     reason_code=body.reason_code, network=body.network,
                     transaction_date=body.transaction_date, foreign=body.foreign,
                     point_of_sale=body.point_of_sale)
    return await run(request, path_uuid(request, "case_id"), decide, status=201,
                     extra=lambda _: {"dispute_id": str(dispute_id)})


async def resolve_dispute(request: web.Request) -> web.Response:
    body = await decode(request, rq.ResolveDispute)
    decide = partial(d.resolve_dispute, dispute_id=path_uuid(request, "dispute_id"),
                     outcome=body.outcome, note=body.note)
    return await run(request, path_uuid(request, "case_id"), decide)


async def record_dispute_stage(request: web.Request) -> web.Response:
    body = await decode(request, rq.RecordDisputeStage)
    decide = partial(d.record_dispute_stage, dispute_id=path_uuid(request, "dispute_id"), stage=body.stage,
                     network_reference=body.network_reference, note=body.note)
    return await run(request, path_uuid(request, "case_id"), decide)


async def notify_customer(request: web.Request) -> web.Response:
    body = await decode(request, rq.NotifyCustomer)
    decide = partial(d.notify_customer, channel=body.channel, subject=body.subject, summary=body.summary)
    return await run(request, path_uuid(request, "case_id"), decide)


async def waive_liability(request: web.Request) -> web.Response:
    body = await decode(request, rq.WaiveLiability)
    decide = partial(d.waive_liability, contact_id=body.contact_id, dispute_id=body.dispute_id,
                     note=body.note, amount=body.amount, finality=body.finality,
                     limits=request.app[APPROVAL_LIMITS])
    return await run(request, path_uuid(request, "case_id"), decide, status=accepted_if_asked,
                     extra=approval_asked)


async def grant_provisional_credit(request: web.Request) -> web.Response:
    body = await decode(request, rq.GrantProvisionalCredit)
    credit_id = uuid4()
    decide = partial(d.grant_provisional_credit, credit_id=credit_id, dispute_id=body.dispute_id,
                     amount=body.amount, contact_id=body.contact_id, limits=request.app[APPROVAL_LIMITS])
    return await run(request, path_uuid(request, "case_id"), decide, status=accepted_if_asked,
                     extra=lambda o: approval_asked(o) or {"credit_id": str(credit_id)})


async def reverse_provisional_credit(request: web.Request) -> web.Response:
    body = await decode(request, rq.ReverseProvisionalCredit)
    decide = partial(d.reverse_provisional_credit, credit_id=path_uuid(request, "credit_id"), reason=body.reason)
    return await run(request, path_uuid(request, "case_id"), decide)


async def stop_payments(request: web.Request) -> web.Response:
    body = await decode(request, rq.StopPayments)
    decide = partial(d.stop_payments, contact_id=body.contact_id, scope=body.scope, merchant=body.merchant)
    return await run(request, path_uuid(request, "case_id"), decide)


async def suspend_card(request: web.Request) -> web.Response:
    body = await decode(request, rq.SuspendCard)
    decide = partial(d.suspend_card, card_id=card_in_path(request), reason=body.reason,
                     include_linked=body.include_linked)
    return await run(request, path_uuid(request, "case_id"), decide,
                     extra=lambda o: {"suspended": [e.card_id for e in o.events]})  # type: ignore[attr-defined]


async def reissue_card(request: web.Request) -> web.Response:
    body = await decode(request, rq.ReissueCard)
    new_card_id, new_last4 = f"card-{uuid4().hex[:12]}", f"{secrets.randbelow(10_000):04d}"
    decide = partial(d.reissue_card, contact_id=body.contact_id, card_id=card_in_path(request),
                     new_card_id=new_card_id, new_last4=new_last4, delivery=body.delivery, expedite=body.expedite,
                     fee=FeeAsked(amount=body.fee.amount, bearer=body.fee.bearer, merchant=body.fee.merchant))
    return await run(request, path_uuid(request, "case_id"), decide,
                     extra=lambda _: {"new_card": {"card_id": new_card_id, "last4": new_last4}})


async def record_card_destroyed(request: web.Request) -> web.Response:
    body = await decode(request, rq.RecordCardDestroyed)
    decide = partial(d.record_card_destroyed, card_id=card_in_path(request),
                     branch=body.branch, certificate_id=body.certificate_id)
    return await run(request, path_uuid(request, "case_id"), decide)


async def suspend_online_access(request: web.Request) -> web.Response:
    body = await decode(request, rq.SuspendOnlineAccess)
    return await run(request, path_uuid(request, "case_id"),
                     partial(d.suspend_online_access, reason=body.reason))


async def record_compromise(request: web.Request) -> web.Response:
    body = await decode(request, rq.RecordCompromise)
    breach = None
    if body.breach_id is not None:
        breach = await request.app[BREACHES].find(body.breach_id)
        if breach is None:
            raise validation_problem([FieldError("breach_id", "names no recorded breach")])
    decide = partial(record_compromise_of, source=body.source, detail=body.detail, domain=body.domain, breach=breach)
    return await run(request, path_uuid(request, "case_id"), decide)


async def record_contact_details(request: web.Request) -> web.Response:
    body = await decode(request, rq.RecordContactDetails)
    phone = request.app[PERSONAL_DATA].phone(body.daytime_phone, field="daytime_phone", keep_number=True)
    decide = partial(d.record_contact_details, contact_id=body.contact_id, daytime_phone=phone)
    return await run(request, path_uuid(request, "case_id"), decide)


async def add_note(request: web.Request) -> web.Response:
    body = await decode(request, rq.AddNote)
    note_id = uuid4()
    decide = partial(d.add_handoff_note, note_id=note_id, text=body.text,
                     for_department=body.for_department, pinned=body.pinned)
    return await run(request, path_uuid(request, "case_id"), decide, status=201,
                     extra=lambda o: {"note_id": str(note_id), "text": o.events[-1].text})  # type: ignore[attr-defined]


async def escalate(request: web.Request) -> web.Response:
    body = await decode(request, rq.Escalate)
    decide = partial(d.escalate, to_department=body.to_department, reason=body.reason,
                     priority=body.priority)
    return await run(request, path_uuid(request, "case_id"), decide)


async def conclude_escalation(request: web.Request) -> web.Response:
    body = await decode(request, rq.ConcludeEscalation)
    decide = partial(d.conclude_escalation, department=request.match_info["department"], decision=body.decision,
                     actor_departments=tuple(request[PRINCIPAL].departments))
    return await run(request, path_uuid(request, "case_id"), decide)


async def schedule_callback(request: web.Request) -> web.Response:
    body = await decode(request, rq.ScheduleCallback)
    callback_id = uuid4()
    pii = request.app[PERSONAL_DATA]
    phone = None if body.phone == "registered" else pii.phone(body.phone, keep_number=True, compared=True)
    decide = partial(d.schedule_callback, callback_id=callback_id, due_at=body.due_at, phone=phone,
                     reason=body.reason, department=body.department)
    return await run(request, path_uuid(request, "case_id"), decide, status=201,
                     extra=lambda _: {"callback_id": str(callback_id)})


async def complete_callback(request: web.Request) -> web.Response:
    body = await decode(request, rq.CloseCallback)
    decide = partial(d.complete_callback, callback_id=path_uuid(request, "callback_id"), note=body.note or "")
    return await run(request, path_uuid(request, "case_id"), decide)


async def miss_callback(request: web.Request) -> web.Response:
    body = await decode(request, rq.CloseCallback)
    decide = partial(d.miss_callback, callback_id=path_uuid(request, "callback_id"), note=body.note or "")
    return await run(request, path_uuid(request, "case_id"), decide)


async def reschedule_callback(request: web.Request) -> web.Response:
    body = await decode(request, rq.RescheduleCallback)
    decide = partial(d.reschedule_callback, callback_id=path_uuid(request, "callback_id"), due_at=body.due_at,
                     note=body.note or "")
    return await run(request, path_uuid(request, "case_id"), decide)


async def waive_callback(request: web.Request) -> web.Response:
    body = await decode(request, rq.WaiveCallback)
    decide = partial(d.waive_callback, callback_id=path_uuid(request, "callback_id"), reason=body.reason)
    return await run(request, path_uuid(request, "case_id"), decide)


async def release(request: web.Request) -> web.Response:
    body = await decode(request, rq.Release)
    return await run(request, path_uuid(request, "case_id"), partial(d.release, note=body.note or ""))


async def resolve_case(request: web.Request) -> web.Response:
    body = await decode(request, rq.ResolveCase)
    decide = partial(d.resolve_case, resolution=body.resolution, summary=body.summary)
    return await run(request, path_uuid(request, "case_id"), decide)


async def reopen_case(request: web.Request) -> web.Response:
    body = await decode(request, rq.ReopenCase)
    return await run(request, path_uuid(request, "case_id"), partial(d.reopen_case, reason=body.reason))


async def merge_case(request: web.Request) -> web.Response:
    """The case in the path is the duplicate: it is absorbed into `into_case_id`."""
    body = await decode(request, rq.MergeCase)
    principal = request[PRINCIPAL]
    if body.different_customer_ok and principal.role not in MAY_MERGE_ACROSS_CUSTOMERS:
        raise Problem(403, "forbidden", "Not allowed",
                      "only a supervisor may merge cases of different customers (different_customer_ok)")
    reason, ok = body.reason, body.different_customer_ok

    def decide(absorbed: FraudCase, survivor: FraudCase, *, actor: Actor, at: datetime,
               first_position: int | None) -> list[CaseEvent]:
        return d.merge_case(absorbed, survivor, actor=actor, at=at, reason=reason, different_customer_ok=ok,
                            absorbed_position=first_position)

    def extra(outcome: Outcome) -> dict[str, Any]:
        assert outcome.other is not None
        return {"merged_into": str(outcome.other.id), "survivor_version": outcome.other.version}

    return await run_pair(request, path_uuid(request, "case_id"), body.into_case_id, "into_case_id", decide, extra)


async def unmerge_case(request: web.Request) -> web.Response:
    """The case in the path is the survivor; `case_id` in the body the case it gives back."""
    body = await decode(request, rq.UnmergeCase)
    reason = body.reason

    def decide(survivor: FraudCase, absorbed: FraudCase, *, actor: Actor, at: datetime,
               first_position: int | None) -> list[CaseEvent]:
        return d.unmerge_case(survivor, absorbed, actor=actor, at=at, reason=reason)

    def extra(outcome: Outcome) -> dict[str, Any]:
        assert outcome.other is not None
        return {"absorbed_case_id": str(outcome.other.id), "absorbed_version": outcome.other.version}

    return await run_pair(request, path_uuid(request, "case_id"), body.case_id, "case_id", decide, extra)
