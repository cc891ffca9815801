"""Given/when/then for case decisions, and the facts tests start from.

    given(opened(), call_started(), verified()).when(reissue_card, **REISSUE).then(
        ReplacementCardIssued)

Facts are events as they were recorded; `given` numbers their versions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
import pytest

from casedesk.domain import events as ev
from casedesk.domain.case import FraudCase, replay
from casedesk.domain.errors import RuleViolation
from casedesk.domain.values import (
    Actor,
    Card,
    ContactChannel,
    ContactDirection,
    Customer,
    Fee,
    Money,
    PhoneNumber,
    ReviewedTransaction,
)

CASE = UUID(int=1)
CALL, LATER_CALL = UUID(int=11), UUID(int=12)
DISPUTE, CALLBACK, NOTE = UUID(int=21), UUID(int=31), UUID(int=41)
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)

AGENT = Actor(id="agent-1", name="Aiko Sato", role="agent", department="fraud")
OTHER_AGENT = Actor(id="agent-2", name="Ken Mori", role="agent", department="fraud")
SUPERVISOR = Actor(id="sup-1", name="Yui Kato", role="supervisor", department="fraud")
REGISTERED = PhoneNumber(masked="•••• 5678", key="phone-key-registered")
OTHER_PHONE = PhoneNumber(masked="•••• 9999", key="phone-key-other")
CUSTOMER = Customer(
    customer_id="cust-1", name_masked="T***** H*****", name_key="name-key-1", phone=REGISTERED
)
PRIMARY = Card(card_id="card-p", last4="4242", network="visa", kind="primary")
FAMILY = Card(
    card_id="card-f", last4="4243", network="visa", kind="family", primary_card_id="card-p"
)
SIBLING = Card(
    card_id="card-g", last4="4244", network="visa", kind="family", primary_card_id="card-p"
)
PAN = "4111 1111 1111 1111"


def jpy(amount: str) -> Money:
    return Money(amount=amount, currency="JPY")


TRANSACTION = ReviewedTransaction(
    transaction_id="tx-1",
    merchant="WEBTEL",
    amount=jpy("1995"),
    occurred_at=T0 - timedelta(days=2),
    answer="unrecognized",
)

# Arguments of the sensitive commands, ready to use (all in CALL).
DISPUTE_ARGS: dict[str, Any] = dict(
    contact_id=CALL,
    dispute_id=DISPUTE,
    transaction_id="tx-1",
    merchant="WEBTEL",
    amount=jpy("1995"),
    reason_code="10.4",
    network="visa",
)
REISSUE_ARGS: dict[str, Any] = dict(
    contact_id=CALL,
    card_id="card-p",
    new_card_id="card-n",
    new_last4="0007",
    delivery="branch_pickup",
    expedite=True,
    fee=Fee(amount=jpy("0"), bearer="issuer"),
)
STOP_ARGS: dict[str, Any] = dict(contact_id=CALL, scope="merchant", merchant="WEBTEL")
WAIVE_ARGS: dict[str, Any] = dict(contact_id=CALL, dispute_id=None, note="Customer owes nothing")
DETAILS_ARGS: dict[str, Any] = dict(
    contact_id=CALL,
    daytime_phone=PhoneNumber(masked="•••• 1234", key="phone-key-day", number="0312341234"),
)
REVIEW_ARGS: dict[str, Any] = dict(contact_id=CALL, transactions=[TRANSACTION])


def _stamp(at: datetime = T0, contact_id: UUID | None = CALL) -> dict[str, Any]:
    return dict(
        originator_id=CASE, originator_version=0, timestamp=at, actor=AGENT, contact_id=contact_id
    )


# --- facts -----------------------------------------------------------------


def opened(*cards: Card) -> ev.CaseOpened:
    return ev.CaseOpened(
        **_stamp(contact_id=None),
        customer=CUSTOMER,
        cards=cards or (PRIMARY,),
        reason="unrecognized_charge",
        channel="phone",
        summary="Customer does not recognise WEBTEL",
    )


def call_started(
    contact_id: UUID = CALL,
    direction: ContactDirection = "inbound",
    phone: PhoneNumber | None = REGISTERED,
    channel: ContactChannel = "phone",
) -> ev.ContactStarted:
    return ev.ContactStarted(
        **_stamp(contact_id=contact_id),
        direction=direction,
        channel=channel,
        phone=phone,
        department="fraud",
        purpose=None,
        to_registered_number=phone == REGISTERED,
    )


def call_ended(contact_id: UUID = CALL) -> ev.ContactEnded:
    return ev.ContactEnded(**_stamp(contact_id=contact_id), outcome="connected", summary="done")


def verified(contact_id: UUID = CALL) -> ev.IdentityVerified:
    return ev.IdentityVerified(
        **_stamp(contact_id=contact_id), method="knowledge_based", factors=("date_of_birth",)
    )


def failed(at: datetime = T0, contact_id: UUID = CALL) -> ev.IdentityVerificationFailed:
    return ev.IdentityVerificationFailed(
        **_stamp(at, contact_id), method="knowledge_based", factors=("name",), failures_in_24h=1
    )


def locked() -> ev.IdentityLocked:
    return ev.IdentityLocked(**_stamp(), failures_in_24h=3)


def suspended(card_id: str = "card-p") -> ev.CardSuspended:
    return ev.CardSuspended(**_stamp(), card_id=card_id, reason="fraud", linked=False)


def replaced(old: str = "card-p", new: str = "card-n") -> ev.ReplacementCardIssued:
    return ev.ReplacementCardIssued(
        **_stamp(),
        old_card_id=old,
        new_card_id=new,
        new_last4="0007",
        delivery="mail",
        expedited=False,
        fee=Fee(amount=jpy("0"), bearer="issuer"),
    )


def disputed(transaction_id: str = "tx-1", dispute_id: UUID = DISPUTE) -> ev.ChargeDisputed:
    args = {**DISPUTE_ARGS, "transaction_id": transaction_id, "dispute_id": dispute_id}
    del args["contact_id"]
    return ev.ChargeDisputed(**_stamp(), **args)


def callback_scheduled(callback_id: UUID = CALLBACK) -> ev.CallbackScheduled:
    return ev.CallbackScheduled(
        **_stamp(),
        callback_id=callback_id,
        due_at=T0 + timedelta(hours=3),
        phone=None,
        to_registered_number=True,
        reason="confirm with credit management",
        department="fraud",
    )


def assigned(agent: Actor = AGENT) -> ev.CaseAssigned:
    return ev.CaseAssigned(**_stamp(), agent_id=agent.id, agent_name=agent.name)


def resolved() -> ev.CaseResolved:
    return ev.CaseResolved(**_stamp(contact_id=None), resolution="fraud_confirmed", summary="ok")


VERIFIED_CALL = (opened(), call_started(), verified())


# --- given / when / then ---------------------------------------------------


class Given:
    def __init__(self, facts: tuple[ev.CaseEvent, ...]) -> None:
        self.history = [
            msgspec.structs.replace(e, originator_version=n) for n, e in enumerate(facts, 1)
        ]
        self.case: FraudCase | None = replay(self.history)

    def when(self, decision: Callable[..., list[ev.CaseEvent]], /, **kwargs: Any) -> When:
        kwargs.setdefault("actor", AGENT)
        kwargs.setdefault("at", NOW)
        return When(self.case, decision, kwargs)


class When:
    def __init__(
        self,
        case: FraudCase | None,
        decision: Callable[..., list[ev.CaseEvent]],
        kwargs: dict[str, Any],
    ) -> None:
        self.case, self._decision, self._kwargs = case, decision, kwargs

    def _decide(self) -> list[ev.CaseEvent]:
        if self.case is None:
            return self._decision(**self._kwargs)
        return self._decision(self.case, **self._kwargs)

    def then(self, *expected: type[ev.CaseEvent]) -> list[ev.CaseEvent]:
        """Assert the event types in order; the events must apply to the case."""
        events = self._decide()
        assert [type(e) for e in events] == list(expected)
        self.after = replay(events, self.case)
        return events

    def refused(self, rule: str) -> RuleViolation:
        with pytest.raises(RuleViolation) as refusal:
            self._decide()
        assert refusal.value.rule == rule, refusal.value
        return refusal.value


def given(*facts: ev.CaseEvent) -> Given:
    return Given(facts)
