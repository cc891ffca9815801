"""A merchant's data breach, and the outreach case each affected card gets.

A breach is a supervisor's record (its own stream, like a merchant flag): the
merchant, when card data was exposed, what was exposed, who pays for reissues.
Each card on the breached merchant's list becomes one case in queue
`breach_outreach`, opened with the breach as the suspected compromise. The
case id is derived from the breach and the card, so the same card listed
twice, or a list uploaded again, can never open a second case.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from uuid import UUID, uuid5

from . import events as ev
from .card_data import check_structured_field
from .case import FraudCase
from .decisions_cards import record_compromise
from .decisions_case import open_case
from .errors import RuleViolation
from .events import RecordedEvent
from .values import Actor, Card, CompromiseSource, Customer, DataExposed, FeeBearer

_EXPOSED_WORDS: dict[str, str] = {
    "card_number": "card numbers",
    "security_code": "security codes",
    "expiry_date": "expiry dates",
    "cardholder_name": "names",
    "phone": "phone numbers",
    "address": "addresses",
    "email": "email addresses",
    "password": "passwords",
}


class BreachRecorded(RecordedEvent, frozen=True, kw_only=True):
    """A merchant leaked card data in a window; reissues are borne by `reissue_fee_bearer`."""

    merchant: str
    window_start: datetime
    window_end: datetime
    data_exposed: tuple[DataExposed, ...]
    reissue_fee_bearer: FeeBearer

    def exposure(self) -> str:
        """The breach in one phrase, for case summaries and timelines."""
        return _exposure(self)


@lru_cache(maxsize=16)  # one phrase per breach, asked once per affected card
def _exposure(breach: BreachRecorded) -> str:
    exposed = ", ".join(_EXPOSED_WORDS[d] for d in breach.data_exposed)
    return (f"{breach.merchant} data breach ({exposed} exposed "
            f"{breach.window_start:%Y-%m-%d} to {breach.window_end:%Y-%m-%d})")


def record_breach(
    *,
    breach_id: UUID,
    actor: Actor,
    at: datetime,
    merchant: str,
    window_start: datetime,
    window_end: datetime,
    data_exposed: tuple[DataExposed, ...],
    reissue_fee_bearer: FeeBearer,
) -> list[BreachRecorded]:
    """Record a breach; the record is written once and never edited."""
    if not merchant.strip():
        raise RuleViolation("merchant-needed", "name the breached merchant")
    check_structured_field("merchant", merchant)
    for name, moment in (("at", at), ("window_start", window_start), ("window_end", window_end)):
        if moment.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware")
    if window_end < window_start:
        raise RuleViolation("invalid-exposure-window", "the exposure window ends before it starts")
    if window_start > at:
        raise RuleViolation("invalid-exposure-window", "the exposure window starts in the future")
    if not data_exposed:
        raise RuleViolation("data-exposed-needed", "say what data the merchant exposed")
    return [BreachRecorded(
        originator_id=breach_id, originator_version=1, timestamp=at, actor=actor, merchant=merchant.strip(),
        window_start=window_start, window_end=window_end, data_exposed=tuple(dict.fromkeys(data_exposed)),
        reissue_fee_bearer=reissue_fee_bearer,
    )]


def breach_case_id(breach_id: UUID, card_id: str) -> UUID:
    """The one outreach case a card gets for a breach."""
    return uuid5(breach_id, card_id)


def open_breach_outreach(
    breach: BreachRecorded, *, actor: Actor, at: datetime, customer: Customer, card: Card
) -> list[ev.CaseEvent]:
    """Open the outreach case of one affected card, its compromise and fee bearer recorded."""
    case_id = breach_case_id(breach.originator_id, card.card_id)
    events = open_case(
        case_id=case_id, actor=actor, at=at, customer=customer, cards=[card], reason="data_breach",
        channel="breach_notice",
        summary=f"Card in the {breach.exposure()}; reach the cardholder and offer a reissue",
    )
    events.append(ev.CompromiseSuspected(
        originator_id=case_id, originator_version=len(events) + 1, timestamp=at, actor=actor,
        source="data_breach", detail=f"listed by the {breach.exposure()}", domain=None,
        breach_id=breach.originator_id, reissue_fee_bearer=breach.reissue_fee_bearer,
        fee_merchant=breach.merchant if breach.reissue_fee_bearer == "merchant" else None,
    ))
    return events


def record_compromise_of(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    source: CompromiseSource,
    detail: str,
    domain: str | None = None,
    breach: BreachRecorded | None = None,
) -> list[ev.CaseEvent]:
    """Record where the data leaked; a recorded breach named as the source also says who
    pays for this case's reissues: its bearer, and the merchant by name when it pays."""
    bearer = breach.reissue_fee_bearer if breach is not None else None
    return record_compromise(case, actor=actor, at=at, source=source, detail=detail, domain=domain,
                             breach_id=breach.originator_id if breach is not None else None,
                             reissue_fee_bearer=bearer,
                             fee_merchant=breach.merchant if breach is not None and bearer == "merchant" else None)
