"""The application service for fraud cases: load, decide, append, retry.

Every case command travels the same short path: load the case (from a
version-checked cache plus whatever the stream gained since), check the caller
may act on it, run the domain decision, append its events with the expected
version, and on a lost race run the decision again on fresh state.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Protocol
from uuid import UUID

import msgspec
from eventsourcing.utils import get_topic

from casedesk.domain.case import FraudCase, replay
from casedesk.domain.errors import CaseMergedError, CaseNotFoundError, RuleViolation
from casedesk.domain.events import CaseEvent, CaseOpened
from casedesk.domain.values import Actor
from casedesk.services.case_access import AccessDeniedError, acting_department, check_may_change
from casedesk.services.privacy.customer_keys import CustomerKeys
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore, Idempotency, StreamConflictError, positions_of
from casedesk.services.store.snapshots import keep_snapshot, latest_snapshot
from casedesk.services.tokens import Principal

MAX_ATTEMPTS = 5
SNAPSHOT_EVERY = 100
SNAPSHOT_TOPIC = get_topic(FraudCase)
_encode_case = msgspec.json.Encoder().encode
_decode_case = msgspec.json.Decoder(FraudCase).decode


class Decision(Protocol):
    def __call__(self, case: FraudCase, *, actor: Actor, at: datetime) -> list[CaseEvent]: ...


class PairDecision(Protocol):
    """A decision on two cases at once (merge, unmerge): events for both streams."""

    def __call__(self, first: FraudCase, second: FraudCase, *, actor: Actor, at: datetime,
                 first_position: int | None) -> list[CaseEvent]: ...


class Opening(Protocol):
    def __call__(self, *, actor: Actor, at: datetime) -> list[CaseEvent]: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a command did: the case after it, the events and their positions."""

    case: FraudCase
    events: list[CaseEvent]
    positions: list[int]
    other: FraudCase | None = None  # the second case of a command on two (merge, unmerge), after it
    # A command on two cases: the last position it wrote to either, so that a read waiting
    # for `position` sees both cases changed (read your writes).
    last_written: int | None = None
    # The events as decided, before their personal strings were sealed (empty when nothing was
    # sealed): an answer made from them needs no token opened; the answer kept for an
    # Idempotency-Key is made from `events`, so nothing stored holds the clear text.
    decided: Sequence[CaseEvent] = ()

    def as_decided(self) -> Outcome:
        """This outcome with the events as decided (the clear text the agent just sent)."""
        return dataclasses.replace(self, events=list(self.decided)) if self.decided else self

    @property
    def version(self) -> int:
        return self.case.version

    @property
    def position(self) -> int | None:
        if self.last_written is not None:
            return self.last_written
        return self.positions[-1] if self.positions else None


Answer = Callable[[Outcome], tuple[int, bytes]]  # how the HTTP layer answers an outcome (kept under the key)


class CaseChange(msgspec.Struct, frozen=True, kw_only=True):
    """One event written after the version a stale If-Match named: who changed the case, when, how."""

    agent_id: str
    name: str
    at: datetime
    type: str
    version: int


CHANGES_NAMED = 20  # a 412 names the newest this many changes since the caller's version


class VersionMismatchError(Exception):
    """If-Match named another version than the case is at; `changed_by` says who changed it since."""

    def __init__(self, current: int, changed_by: list[CaseChange] | None = None) -> None:
        super().__init__(f"the case is at version {current}")
        self.current = current
        self.changed_by = changed_by or []

    def __str__(self) -> str:
        if not self.changed_by:
            return f"the case is at version {self.current}"
        names = ", ".join(dict.fromkeys(c.name for c in self.changed_by))
        return f"the case is at version {self.current}: changed since by {names}"


def actor_of(principal: Principal, department: str) -> Actor:
    return Actor(id=principal.sub, name=principal.name, role=principal.role, department=department)


class _Turn:
    """A case's queue of commands in this process."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class CaseService:
    """Runs case commands against the event store."""

    def __init__(self, store: EventStore, mapper: CaseEventMapper, cache_size: int = 50_000) -> None:
        self.store = store
        self.mapper = mapper
        self._cache: OrderedDict[UUID, FraudCase] = OrderedDict()
        self._cache_size = cache_size
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._turns: dict[UUID, _Turn] = {}
        # Told of every append this service made, at once (the case streams of this process, issue 19):
        # each gets the events and their positions; it must not block.
        self.appended: list[Callable[[list[CaseEvent], list[int]], None]] = []
        # Seals personal data as events are decided (issue 21): the state, snapshots, answers
        # and stored events all carry tokens, never clear text. None: stored as decided.
        self.privacy: CustomerKeys | None = None

    async def load(self, case_id: UUID) -> FraudCase:
        """The case as it stands now.

        From this process's cache plus whatever the stream gained since (one
        query); on a cache miss from the latest snapshot plus the events after
        it, so a long case never replays from its first event.
        """
        cached = self._cache.get(case_id) or await self._snapshot(case_id)
        stored = await self.store.read_stream(case_id, gt=cached.version if cached else None)
        events = [self.mapper.to_domain_event(s) for s in stored]
        if cached is None and events and not isinstance(events[0], CaseOpened):
            raise CaseNotFoundError(str(case_id))  # another kind of stream (a merchant's)
        case = replay(events, cached) if events else cached
        if case is None:
            raise CaseNotFoundError(str(case_id))
        self._remember(case)
        return case

    def adopt(self, case_id: UUID, snapshot: bytes | None, events: Iterable[CaseEvent]) -> FraudCase:
        """The case from a snapshot and the events after it that a caller read in its own query.

        What load() gets in two round trips, a claim gets inside the statement
        that holds the case. The copy is trusted as load()'s would be: a newer
        write elsewhere is caught by the append's version check.
        """
        case = replay(events, _decode_case(snapshot) if snapshot is not None else None)
        if case is None or case.id != case_id:
            raise CaseNotFoundError(str(case_id))
        cached = self._cache.get(case_id)
        if cached is not None and cached.version > case.version:
            return cached
        self._remember(case)
        return case

    async def open(
        self,
        principal: Principal,
        decide: Opening,
        idempotency: Idempotency | None = None,
        answer: Answer | None = None,
    ) -> Outcome:
        actor = actor_of(principal, "fraud")
        events = decide(actor=actor, at=self.clock())
        if events and isinstance(events[0], CaseOpened):
            events = await self._sealed(events[0].customer.customer_id, events)
        case = replay(events)
        assert case is not None
        return await self._append(case, events, idempotency, answer)

    async def change(
        self,
        principal: Principal,
        case_id: UUID,
        decide: Decision,
        *,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
        answer: Answer | None = None,
        for_customer: bool = False,
    ) -> Outcome:
        """Run one command; re-run it on fresh state when another command won the race.

        Commands on one case take turns within this process (they would only
        lose the race to each other); other processes are met by the retry.
        `for_customer`: the customer acts through a service (the IVR), which
        holds no department: the case's access rules do not apply to them.
        """
        try:
            async with self._turn(case_id):
                return await self._change(principal, case_id, decide, expected_version, idempotency, answer,
                                          for_customer)
        except VersionMismatchError as stale:
            if expected_version is not None and not stale.changed_by:
                stale.changed_by = await self.changes_since(case_id, expected_version)
            raise

    async def changes_since(self, case_id: UUID, version: int) -> list[CaseChange]:
        """Who wrote the case's events after `version` (the newest CHANGES_NAMED, oldest first)."""
        stored = await self.store.read_stream(case_id, gt=version, desc=True, limit=CHANGES_NAMED)
        events = [self.mapper.to_domain_event(s) for s in reversed(stored)]
        return [CaseChange(agent_id=e.actor.id, name=e.actor.name, at=e.timestamp, type=type(e).__name__,
                           version=e.originator_version) for e in events]

    async def record_for_system(self, actor: Actor, case_id: UUID, decide: Decision) -> Outcome:
        """A decision casedesk takes itself (a processor's answer): no agent, so no access check.

        Always on the stored state, and again on a lost race, so a decision that
        records nothing twice (an answer already recorded) sees what is stored.
        """
        async with self._turn(case_id):
            for attempt in range(MAX_ATTEMPTS):
                case = await self.load(case_id)
                events = await self._sealed(case.customer.customer_id, decide(case, actor=actor, at=self.clock()))
                try:
                    return await self._append(replay(events, case) or case, events, None, None)
                except StreamConflictError:
                    self._cache.pop(case_id, None)
                    if attempt == MAX_ATTEMPTS - 1:
                        raise
        raise AssertionError("unreachable")

    async def change_pair(
        self,
        principal: Principal,
        case_id: UUID,
        other_id: UUID,
        decide: PairDecision,
        *,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
        answer: Answer | None = None,
    ) -> Outcome:
        """One command on two cases (`case_id` in the path, `other_id` named in the body): both
        streams are written in one append, all or nothing, each at its expected version.

        Both cases' turns are taken, in id order (two merges of the same pair, either way
        round, cannot wait for each other). Always on stored state: a merge is rare, and
        its refusals must be right. The answer is about `case_id`.
        `LookupError(other_id)` when the other case does not exist or is hidden from the caller.
        """
        async with contextlib.AsyncExitStack() as turns:
            for turn in sorted({case_id, other_id}):  # one turn when merged into itself (refused)
                await turns.enter_async_context(self._turn(turn))
            for attempt in range(MAX_ATTEMPTS):
                case = await self.load(case_id)
                check_may_change(principal, case)  # the path's case first: hidden, it is a 404 as anywhere
                try:
                    other = await self.load(other_id)
                    check_may_change(principal, other)
                except (CaseNotFoundError, AccessDeniedError) as error:
                    raise LookupError(str(other_id)) from error
                if expected_version is not None and case.version != expected_version:
                    raise VersionMismatchError(case.version)
                position = (await positions_of(self.store.pool, [(case.id, case.version)])).get(
                    (case.id, case.version))
                actor = actor_of(principal, acting_department(principal, case))
                events = decide(case, other, actor=actor, at=self.clock(), first_position=position)
                mine = await self._sealed(case.customer.customer_id,
                                          [e for e in events if e.originator_id == case.id])
                theirs = await self._sealed(other.customer.customer_id,
                                            [e for e in events if e.originator_id == other.id])
                # The decided order kept (it is the order the streams are written in).
                sealed_in_turn = {id(e): s for e, s in zip([e for e in events if e.originator_id == case.id], mine,
                                                           strict=True)}
                sealed_in_turn.update({id(e): s for e, s in zip([e for e in events if e.originator_id == other.id],
                                                                theirs, strict=True)})
                events = [sealed_in_turn[id(e)] for e in events]
                after = replay(mine, case) or case
                other_after = replay(theirs, other) or other

                def mine_only(positions: list[int], events: list[CaseEvent] = events, case_id: UUID = case.id
                              ) -> list[int]:
                    return [p for e, p in zip(events, positions, strict=True) if e.originator_id == case_id]

                def answer_pair(outcome: Outcome, after: FraudCase = after, mine: list[CaseEvent] = mine,
                                 other_after: FraudCase = other_after) -> tuple[int, bytes]:
                    assert answer is not None
                    return answer(Outcome(after, mine, mine_only(outcome.positions), other_after,
                                           max(outcome.positions)))

                try:
                    outcome = await self._append(after, events, idempotency,
                                                 answer_pair if answer is not None else None)
                except StreamConflictError:
                    self._cache.pop(case_id, None)
                    self._cache.pop(other_id, None)
                    if attempt == MAX_ATTEMPTS - 1 or expected_version is not None:
                        raise
                    continue
                self._remember(other_after)
                return Outcome(after, mine, mine_only(outcome.positions), other_after, max(outcome.positions))
        raise AssertionError("unreachable")

    @contextlib.asynccontextmanager
    async def _turn(self, case_id: UUID) -> AsyncIterator[None]:
        turn = self._turns.get(case_id)
        if turn is None:
            turn = self._turns[case_id] = _Turn()
        turn.users += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._turns[case_id]

    async def _change(
        self,
        principal: Principal,
        case_id: UUID,
        decide: Decision,
        expected_version: int | None,
        idempotency: Idempotency | None,
        answer: Answer | None,
        for_customer: bool = False,
    ) -> Outcome:
        for attempt in range(MAX_ATTEMPTS):
            # This process's copy is trusted without a round trip: if another process
            # wrote since, the append's version check fails and the retry loads afresh.
            cached = self._cache.get(case_id) if attempt == 0 else None
            case = cached or await self.load(case_id)
            try:
                events = self._decide(principal, case, decide, expected_version, for_customer)
            except (RuleViolation, AccessDeniedError, VersionMismatchError):
                if cached is None:
                    raise
                # A refusal is only ever given on the stored state, never on a stale copy.
                case = await self.load(case_id)
                events = self._decide(principal, case, decide, expected_version, for_customer)
            decided, events = events, await self._sealed(case.customer.customer_id, events)
            try:
                return await self._append(replay(events, case) or case, events, idempotency, answer,
                                          decided=decided if events is not decided else ())
            except StreamConflictError:
                self._cache.pop(case_id, None)
                if attempt == MAX_ATTEMPTS - 1 or (expected_version is not None and cached is None):
                    raise
        raise AssertionError("unreachable")

    def _decide(self, principal: Principal, case: FraudCase, decide: Decision,
                expected_version: int | None, for_customer: bool = False) -> list[CaseEvent]:
        if not for_customer:
            check_may_change(principal, case)
        if case.merged_into is not None:  # before If-Match: no version of it takes a command
            raise CaseMergedError(case.id, case.merged_into)
        if expected_version is not None and case.version != expected_version:
            raise VersionMismatchError(case.version)
        actor = actor_of(principal, "" if for_customer else acting_department(principal, case))
        return decide(case, actor=actor, at=self.clock())

    async def _append(
        self,
        case: FraudCase,
        events: list[CaseEvent],
        idempotency: Idempotency | None,
        answer: Answer | None,
        *,
        decided: Sequence[CaseEvent] = (),
    ) -> Outcome:
        stored = [self.mapper.to_stored_event(e) for e in events]
        outcome = await self.store.append_once(stored, partial(Outcome, case, events, decided=decided), idempotency,
                                               answer)
        if events:
            self._remember(case)
            for tell in self.appended:
                tell(events, outcome.positions)
            if case.version // SNAPSHOT_EVERY > (case.version - len(events)) // SNAPSHOT_EVERY:
                await self._take_snapshot(case)
        return outcome

    async def _sealed(self, customer_id: str, events: list[CaseEvent]) -> list[CaseEvent]:
        if self.privacy is None or not events:
            return events
        return await self.privacy.seal(customer_id, events)

    async def _snapshot(self, case_id: UUID) -> FraudCase | None:
        state = await latest_snapshot(self.store.pool, case_id)
        return _decode_case(state) if state is not None else None

    async def _take_snapshot(self, case: FraudCase) -> None:
        """Keep the case's state every SNAPSHOT_EVERY events (a cache of the replay, never the truth)."""
        await keep_snapshot(self.store.pool, case.id, case.version, SNAPSHOT_TOPIC, _encode_case(case))

    def _remember(self, case: FraudCase) -> None:
        self._cache[case.id] = case
        self._cache.move_to_end(case.id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def forget(self, case_id: UUID) -> None:
        self._cache.pop(case_id, None)

