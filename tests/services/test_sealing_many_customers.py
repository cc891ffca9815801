"""Keys for many new customers at once (a breach list's chunk) are made a turn at a time."""

from __future__ import annotations

import random
import string
import uuid
from datetime import UTC, datetime

import asyncpg

from casedesk.domain import decisions as d
from casedesk.domain.values import Actor, Card, Customer, Money, PhoneNumber
from casedesk.services.privacy.customer_keys import KEYS_PER_TURN, CustomerKeys, is_sealed
from tests.loop_turns import LoopTurns

ACTOR = Actor(id="sup-1", name="Y. Kato", role="supervisor", department="fraud")
CUSTOMERS = 200
RUN = "".join(random.choices(string.ascii_lowercase, k=10))  # no digits: never card-like


def opened(n: int) -> tuple[str, list]:
    customer = Customer(customer_id=f"cust-{RUN}-{n}", name_masked=f"T••• Y{n}", name_key=f"nk{n}",
                        phone=PhoneNumber(masked="•••• 5678", key=f"pk{n}"))
    events = d.open_case(case_id=uuid.uuid4(), actor=ACTOR, at=datetime.now(UTC), customer=customer, cards=(Card(card_id=f"card-{n}", last4="4242", network="visa", kind="primary"),),
                         reason="unrecognized_charge", channel="phone", summary=f"Customer {n} called",
                         amount_at_risk=Money(amount="10", currency="USD"))
    return customer.customer_id, list(events)


async def test_sealing_for_many_new_customers_hands_the_loop_back_once_per_turn_of_keys(pool: asyncpg.Pool) -> None:
    keys = CustomerKeys(pool, "test-master-key")
    batches = [opened(n) for n in range(CUSTOMERS)]
    with LoopTurns() as turns:
        sealed = await keys.seal_many(batches)
    assert all(is_sealed(events[0].summary) for events in sealed)
    # Making, opening and sealing under 200 keys: three loops, each handing back every KEYS_PER_TURN
    assert turns.count >= 3 * (CUSTOMERS // KEYS_PER_TURN)
