"""Deadline clocks, derived from a case's events under a clock policy: pure, time as an argument.

`advance` folds one event into a `ClockBook` (the few facts clocks need, and
the clocks so far); what events alone decide is kept there: a clock runs, is
met (on time, or late: `breached` with `met_at`), or is stopped (the dispute
was withdrawn). Whether a running clock has run out is a matter of time, not
of an event, so `standing(clock, now)` says it at read time: the same events
give the same clocks as of any moment, live, rebuilt or replayed. A clock's
`due_at` is the first instant it is late: met before it, breached from it on.

A clock whose rule pauses while a condition of the case holds (the policy's
`paused_while`: `identity_locked`, from IdentityLocked to IdentityUnlocked) is
`paused` from the condition's start (`paused_at`), or from its own start when
it starts meanwhile; a paused clock cannot breach, and a fact that meets it
meets it on time. When the condition ends it runs again, its `due_at` later by
the time it was paused. A clock already past due when the condition begins is
breached, and stays so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from msgspec.structs import replace

from . import events as ev
from .business_days import end_of, nth_day_after, start_of
from .clock_policies import Calendar, ClockPolicy, ClockRule
from .values import CardProduct

ClockState = Literal["running", "paused", "met", "breached", "stopped"]


class Clock(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """One deadline of a case: which rule, from when (and which event), due when, and how it stands."""

    clock: str
    rule: str
    source: str
    started_at: datetime
    started_by_event: int
    due_at: datetime
    calendar: Calendar
    state: ClockState
    met_at: datetime | None = None
    dispute_id: UUID | None = None
    callback_id: UUID | None = None
    paused_at: datetime | None = None  # while paused: since when


class CardFacts(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    network: str
    product: CardProduct


class ClockBook(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What the clocks of one case are derived from: its cards, when its contacts began, the
    card each dispute is on (by dispute id), the conditions that pause clocks in force now
    (since when), and its clocks."""

    cards: dict[str, CardFacts] = {}
    contacts: dict[str, datetime] = {}
    disputes: dict[str, CardFacts] = {}
    clocks: tuple[Clock, ...] = ()
    holding: dict[str, datetime] = {}


def standing(clock: Clock, now: datetime) -> Clock:
    """The clock as it stands at `now`: a running clock past its due time is breached."""
    if clock.state == "running" and now >= clock.due_at:
        return replace(clock, state="breached")
    return clock


def clocks_as_of(clocks: Iterable[Clock], now: datetime) -> list[Clock]:
    return [standing(c, now) for c in clocks]


def clocks_of(events: Iterable[ev.CaseEvent], policy: ClockPolicy, now: datetime) -> list[Clock]:
    """Every clock of a case's events (up to `now`), as it stands at `now`."""
    book = ClockBook()
    for event in events:
        if event.timestamp > now:
            break
        book = advance(book, event, policy)
    return clocks_as_of(book.clocks, now)


def advance(book: ClockBook, event: ev.CaseEvent, policy: ClockPolicy) -> ClockBook:
    """The book after `event` (the same object when the event changes no clock)."""
    change = _CHANGES.get(type(event))
    return change(book, event, policy) if change is not None else book


_Change = Callable[[ClockBook, Any, ClockPolicy], ClockBook]
_CHANGES: dict[type[ev.CaseEvent], _Change] = {}


def _on(event_type: type[ev.CaseEvent]) -> Callable[[_Change], _Change]:
    def register(change: _Change) -> _Change:
        _CHANGES[event_type] = change
        return change

    return register


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _due(rule: ClockRule, start: date, zone: ZoneInfo, extended: bool) -> datetime:
    days = rule.extended_days if extended and rule.extended_days is not None else rule.days
    return end_of(nth_day_after(start, days, rule.calendar), zone)


def _meet(book: ClockBook, policy: ClockPolicy, at: datetime, facts: tuple[str, ...], *,
          dispute_id: UUID | None = None, callback_id: UUID | None = None) -> tuple[Clock, ...]:
    """The clocks with every running one that one of `facts` meets marked met (or breached, when late)."""
    met_by, clocks, moved = _index(policy).met_by, list(book.clocks), False
    for n, c in enumerate(clocks):
        if (c.state in ("running", "paused") and (dispute_id is None or c.dispute_id == dispute_id)
                and (callback_id is None or c.callback_id == callback_id)
                and any(f in met_by.get(c.rule, ()) for f in facts)):
            on_time = c.state == "paused" or at < c.due_at  # a paused clock cannot run out
            clocks[n], moved = replace(c, state="met" if on_time else "breached", met_at=at, paused_at=None), True
    return tuple(clocks) if moved else book.clocks  # the same tuple: nothing for the projection to write


class _PolicyIndex:
    """A policy's rules looked up by what the fold asks (a policy is read on every event)."""

    def __init__(self, policy: ClockPolicy) -> None:
        self.policy = policy
        self.met_by = {r.rule: r.met_by for r in policy.rules}
        self.paused_while = {r.rule: r.paused_while for r in policy.rules if r.paused_while}
        self.disputes: dict[tuple[CardProduct, str], tuple[ClockRule, ...]] = {}


_INDEXES: dict[str, _PolicyIndex] = {}


def _index(policy: ClockPolicy) -> _PolicyIndex:
    index = _INDEXES.get(policy.name)
    if index is None or index.policy is not policy:  # (another policy of the same name: a test's)
        index = _INDEXES[policy.name] = _PolicyIndex(policy)
    return index


def _dispute_rules(policy: ClockPolicy, product: CardProduct, network: str) -> tuple[ClockRule, ...]:
    known = _index(policy).disputes
    rules = known.get((product, network))
    if rules is None:
        rules = known[(product, network)] = policy.for_dispute(product, network)
    return rules


def _with(clocks: tuple[Clock, ...], started: Iterable[Clock]) -> tuple[Clock, ...]:
    """The clocks and the newly started ones (the same tuple when none started: nothing moved)."""
    new = tuple(started)
    return (*clocks, *new) if new else clocks


def _started(rule: ClockRule, event: ev.CaseEvent, started_at: datetime, due_at: datetime, *,
             holding: dict[str, datetime], dispute_id: UUID | None = None, callback_id: UUID | None = None,
             ) -> Clock:
    # In UTC, as every other time casedesk stores (and cheaper to encode than a zone's offset).
    started_at = started_at.astimezone(UTC)
    # Started while a condition that pauses it holds: paused from its start (it never ran).
    paused = any(c in holding for c in rule.paused_while) and event.timestamp < due_at
    return Clock(clock=rule.clock, rule=rule.rule, source=rule.source, started_at=started_at,
                 started_by_event=event.originator_version, due_at=due_at.astimezone(UTC), calendar=rule.calendar,
                 state="paused" if paused else "running", dispute_id=dispute_id, callback_id=callback_id,
                 paused_at=event.timestamp.astimezone(UTC) if paused else None)


@_on(ev.CaseOpened)
def _opened(book: ClockBook, e: ev.CaseOpened, _: ClockPolicy) -> ClockBook:
    cards = {c.card_id: CardFacts(network=c.network.strip().casefold(), product=c.product) for c in e.cards}
    return replace(book, cards=cards)


@_on(ev.ContactStarted)
def _contact_started(book: ClockBook, e: ev.ContactStarted, _: ClockPolicy) -> ClockBook:
    return replace(book, contacts={**book.contacts, str(e.contact_id): e.timestamp})


@_on(ev.ReplacementCardIssued)
def _replaced(book: ClockBook, e: ev.ReplacementCardIssued, _: ClockPolicy) -> ClockBook:
    old = book.cards.get(e.old_card_id)
    return book if old is None else replace(book, cards={**book.cards, e.new_card_id: old})


def _product(book: ClockBook, network: str) -> CardProduct:
    """The disputed card's product: the card on the network disputed with (else the first card)."""
    net = network.strip().casefold()
    card = next((c for c in book.cards.values() if c.network == net), None)
    card = card or next(iter(book.cards.values()), None)
    return card.product if card is not None else "credit"


@_on(ev.ChargeDisputed)
def _disputed(book: ClockBook, e: ev.ChargeDisputed, policy: ClockPolicy) -> ClockBook:
    zone = _zone(policy.zone)
    notice_at = book.contacts.get(str(e.contact_id), e.timestamp)
    extended = e.foreign or e.point_of_sale
    card = CardFacts(network=e.network.strip().casefold(), product=_product(book, e.network))
    started: list[Clock] = []
    for rule in _dispute_rules(policy, card.product, card.network):
        if rule.starts == "transaction" and e.transaction_date is not None:
            started_at = start_of(e.transaction_date, zone)
            due = _due(rule, e.transaction_date, zone, extended)
        elif rule.starts == "notice":
            started_at, due = notice_at, _due(rule, notice_at.astimezone(zone).date(), zone, extended)
        else:
            continue  # a `resolution` rule starts later; a filing limit needs the transaction date
        started.append(_started(rule, e, started_at, due, holding=book.holding, dispute_id=e.dispute_id))
    book = replace(book, clocks=_with(book.clocks, started), disputes={**book.disputes, str(e.dispute_id): card})
    return replace(book, clocks=_meet(book, policy, e.timestamp, ("disputed",), dispute_id=e.dispute_id))


@_on(ev.DisputeResolved)
def _dispute_resolved(book: ClockBook, e: ev.DisputeResolved, policy: ClockPolicy) -> ClockBook:
    if e.outcome == "withdrawn":  # nothing left to do for it: its running clocks stop
        stopped = tuple(replace(c, state="stopped", paused_at=None)
                        if c.dispute_id == e.dispute_id and c.state in ("running", "paused") else c
                        for c in book.clocks)
        return replace(book, clocks=stopped)
    clocks = _meet(book, policy, e.timestamp, ("resolution",), dispute_id=e.dispute_id)
    card = book.disputes.get(str(e.dispute_id))
    if card is None:
        return replace(book, clocks=clocks)
    zone, resolved_on = _zone(policy.zone), e.timestamp.astimezone(_zone(policy.zone)).date()
    started = (_started(r, e, e.timestamp, _due(r, resolved_on, zone, False), holding=book.holding,
                        dispute_id=e.dispute_id)
               for r in _dispute_rules(policy, card.product, card.network) if r.starts == "resolution")
    return replace(book, clocks=_with(clocks, started))


@_on(ev.DisputeStageRecorded)
def _stage(book: ClockBook, e: ev.DisputeStageRecorded, policy: ClockPolicy) -> ClockBook:
    clocks = _meet(book, policy, e.timestamp, (f"stage:{e.stage}",), dispute_id=e.dispute_id)
    card = book.disputes.get(str(e.dispute_id))
    if card is None:
        return replace(book, clocks=clocks)
    zone = _zone(policy.zone)
    on = e.timestamp.astimezone(zone).date()
    started = (_started(r, e, e.timestamp, _due(r, on, zone, False), holding=book.holding, dispute_id=e.dispute_id)
               for r in _dispute_rules(policy, card.product, card.network) if r.starts == e.stage)
    return replace(book, clocks=_with(clocks, started))


@_on(ev.CustomerNotified)
def _notified(book: ClockBook, e: ev.CustomerNotified, policy: ClockPolicy) -> ClockBook:
    return replace(book, clocks=_meet(book, policy, e.timestamp, (f"notice:{e.subject}", "notice:any")))


@_on(ev.ProvisionalCreditGranted)
def _credited(book: ClockBook, e: ev.ProvisionalCreditGranted, policy: ClockPolicy) -> ClockBook:
    # A later reversal does not undo it: the customer had the money within the time allowed.
    return replace(book, clocks=_meet(book, policy, e.timestamp, ("provisional_credit",), dispute_id=e.dispute_id))


@_on(ev.CallbackScheduled)
def _callback_scheduled(book: ClockBook, e: ev.CallbackScheduled, policy: ClockPolicy) -> ClockBook:
    started = (_started(r, e, e.timestamp, e.due_at, holding=book.holding, callback_id=e.callback_id)
               for r in policy.for_callback())
    return replace(book, clocks=_with(book.clocks, started))


def _callback_made(book: ClockBook, e: ev.CallbackCompleted | ev.CallbackMissed, policy: ClockPolicy) -> ClockBook:
    # A missed callback was still attempted when promised: the desk kept its word.
    return replace(book, clocks=_meet(book, policy, e.timestamp, ("callback",), callback_id=e.callback_id))


_CHANGES[ev.CallbackCompleted] = _callback_made
_CHANGES[ev.CallbackMissed] = _callback_made


# --- conditions that pause clocks -----------------------------------------------------


def _pause(book: ClockBook, policy: ClockPolicy, condition: str, at: datetime) -> ClockBook:
    """The condition holds from `at`: the running clocks whose rule pauses while it holds are paused
    (not one already past due: that one is breached)."""
    if condition in book.holding:
        return book
    pauses = _index(policy).paused_while
    clocks, moved = list(book.clocks), False
    for n, c in enumerate(clocks):
        if c.state == "running" and condition in pauses.get(c.rule, ()) and at < c.due_at:
            clocks[n], moved = replace(c, state="paused", paused_at=at.astimezone(UTC)), True
    return replace(book, holding={**book.holding, condition: at}, clocks=tuple(clocks) if moved else book.clocks)


def _resume(book: ClockBook, policy: ClockPolicy, condition: str, at: datetime) -> ClockBook:
    """The condition ends at `at`: the clocks it paused (and no other condition still does) run
    again, due later by the time they were paused."""
    if condition not in book.holding:
        return book
    holding = {k: v for k, v in book.holding.items() if k != condition}
    pauses = _index(policy).paused_while
    clocks, moved = list(book.clocks), False
    for n, c in enumerate(clocks):
        why = pauses.get(c.rule, ())
        if c.state == "paused" and condition in why and not any(k in holding for k in why):
            waited = at - c.paused_at if c.paused_at is not None else timedelta(0)
            clocks[n], moved = replace(c, state="running", due_at=c.due_at + waited, paused_at=None), True
    return replace(book, holding=holding, clocks=tuple(clocks) if moved else book.clocks)


@_on(ev.IdentityLocked)
def _identity_locked(book: ClockBook, e: ev.IdentityLocked, policy: ClockPolicy) -> ClockBook:
    return _pause(book, policy, "identity_locked", e.timestamp)


@_on(ev.IdentityUnlocked)
def _identity_unlocked(book: ClockBook, e: ev.IdentityUnlocked, policy: ClockPolicy) -> ClockBook:
    return _resume(book, policy, "identity_locked", e.timestamp)
