"""Keys for many new customers at once (a breach list's chunk) are made a turn at a time."""

from __future__ import annotations

import gc
import random
import string
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from casedesk.domain import decisions as d
from casedesk.domain.values import Actor, Card, Customer, Money, PhoneNumber
from casedesk.services.privacy import customer_keys
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


def _tracked_in(keys: CustomerKeys) -> int:
    """Objects the cyclic garbage collector tracks that the keys' memory holds (pool and master aside)."""
    seen: set[int] = set()
    stack = [v for name, v in vars(keys).items() if name not in ("_pool", "_master")]
    tracked = 0
    while stack:
        item = stack.pop()
        if id(item) in seen or not gc.is_tracked(item) or isinstance(item, type):
            continue  # (untracked: ints, bytes, floats, strings; a class is shared, not held per key)
        seen.add(id(item))
        tracked += 1
        stack.extend(gc.get_referents(item))
    return tracked


async def test_many_customers_keys_stay_out_of_the_garbage_collectors_walk(
        pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given keys that keep only 50 of them ready as objects
    monkeypatch.setattr(customer_keys, "KEYS_KEPT_OPEN", 50)
    keys = CustomerKeys(pool, "test-master-key")
    # When 200 new customers' cases are sealed
    sealed = await keys.seal_many([opened(n) for n in range(CUSTOMERS)])
    # Then the memory of 200 keys and cases is a handful of tracked containers and at most the 50
    # ready keys (DataKey, AES-GCM, UUID each): a full collection does not walk one object per customer
    assert _tracked_in(keys) <= 3 * 50 + 10
    # and a key no longer kept ready still opens what it sealed, and seals again
    first = sealed[0][0]
    assert await keys.open_text(first.summary) == "Customer 0 called"
    [[again]] = await keys.seal_many([(f"cust-{RUN}-0", sealed[0][:1])])
    assert again.summary == first.summary  # already sealed: kept as it is
    [[resealed]] = await keys.seal_many([opened(0)])
    assert is_sealed(resealed.summary) and await keys.open_text(resealed.summary) == "Customer 0 called"
