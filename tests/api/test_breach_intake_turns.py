"""A breach list that arrives all at once is still checked a turn of lines at a time, so others get served."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

from casedesk.domain.values import Actor
from casedesk.services.breach_intake import LINES_PER_TURN, BreachIntake
from casedesk.services.breaches import find_breach
from casedesk.services.http.app_keys import CASES, PERSONAL_DATA
from tests.api.test_breaches import card_line, new_breach
from tests.loop_turns import LoopTurns

LINES = 1_000


async def at_once(body: bytes) -> AsyncIterator[bytes]:
    """The whole body as if already buffered: reading it never waits for the network."""
    for start in range(0, len(body), 64 * 1024):
        yield body[start:start + 64 * 1024]


async def test_checking_a_buffered_list_hands_the_loop_back_at_least_once_per_turn_of_lines(client, auth) -> None:
    breach_id = await new_breach(client, auth)
    cases = client.app[CASES]
    breach = await find_breach(cases.store, cases.mapper, uuid.UUID(breach_id))
    assert breach is not None
    tag = uuid.uuid4().hex[:8]
    # Every line is refused at its phone number, the last check, so nothing is written: no I/O to wait on.
    body = b"".join(json.dumps(card_line(n, tag, registered_phone="12")).encode() + b"\n" for n in range(LINES))
    intake = BreachIntake(cases.store, cases.mapper, client.app[PERSONAL_DATA], breach,
                          Actor(id="sup-1", name="Y. Kato", role="supervisor", department="fraud"))
    with LoopTurns() as turns:
        report = await intake.take(at_once(body), "ndjson")
    assert report.rejected_total == LINES and report.cases_opened == 0
    assert all(r.reason.startswith("registered_phone") for r in report.rejected)
    assert turns.count >= LINES // LINES_PER_TURN
