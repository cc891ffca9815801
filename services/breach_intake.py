"""Bulk intake of a breached merchant's list of affected cards into outreach cases.

The list arrives as NDJSON or CSV with the columns `customer_id, name,
registered_phone, card_id, last4, network`, streamed: lines are read, checked
and written in chunks, so a list of any length never sits in memory whole.

Each good line opens one case (domain/breaches.py) whose id is derived from
the breach and the card, so the intake is idempotent without a ledger of its
own: a case that already exists is `already_known`, whether it came from an
earlier upload, from an upload cut off half way (every chunk that committed
stays), or from the same card twice in one list. Each bad line is reported
with its line number (1-based, as an editor shows it; a CSV header is line 1)
and a reason that never repeats the line's content, since a merchant's list
may hold card numbers where it should not.

Checking a line and deciding its case take CPU, and a buffered upload is read
without a pause: every LINES_PER_TURN lines the event loop is handed back.
"""

from __future__ import annotations

import asyncio
import csv
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, NamedTuple
from uuid import UUID

import msgspec

from casedesk.domain.breaches import BreachRecorded, breach_case_id, open_breach_outreach
from casedesk.domain.card_data import contains_card_data, holds_card_data, redact_card_numbers
from casedesk.domain.errors import RuleViolation
from casedesk.domain.events import CaseOpened
from casedesk.domain.values import Actor, Card, Customer, is_last4
from casedesk.services.personal_data import PersonalData, mask_name
from casedesk.services.phone_numbers import PhoneNumberRefused
from casedesk.services.privacy.customer_keys import CustomerKeys
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore, StreamConflictError, streams_begun
from casedesk.services.turn_taking import give_way

ListFormat = Literal["ndjson", "csv"]
COLUMNS = ("customer_id", "name", "registered_phone", "card_id", "last4", "network")
MAX_LINE_BYTES = 8192
MAX_LINES = 1_000_000  # one upload; a bigger list goes in several
MAX_FIELD = 200
CHUNK_LINES = 2000
APPENDS_IN_FLIGHT = 64  # cases of one upload being appended at once
LINES_PER_TURN = 8  # lines checked or decided between two hand-backs of the loop: about a millisecond of CPU
REJECTS_LISTED = 10_000  # beyond this only the total is counted


class AffectedCardLine(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One NDJSON line of a breach list."""

    customer_id: str
    name: str
    registered_phone: str
    card_id: str
    last4: str
    network: str


_decode_line = msgspec.json.Decoder(AffectedCardLine).decode


class CheckedLine(NamedTuple):
    """A line's fields, stripped and checked, in COLUMNS order."""

    customer_id: str
    name: str
    registered_phone: str
    card_id: str
    last4: str
    network: str


class UnreadableListError(ValueError):
    """The list as a whole cannot be read (a CSV header without the columns): nothing was written."""


@dataclass(frozen=True, slots=True)
class RejectedLine:
    line: int
    reason: str


@dataclass(slots=True)
class IntakeReport:
    """What an upload did; `accepted` == `cases_opened` + `already_known`."""

    accepted: int = 0
    cases_opened: int = 0
    already_known: int = 0
    rejected: list[RejectedLine] = field(default_factory=list)
    rejected_total: int = 0
    lines: int = 0
    position: int | None = None  # the newest event written, for min_position on reads after

    def reject(self, line: int, reason: str) -> None:
        self.rejected_total += 1
        if len(self.rejected) < REJECTS_LISTED:
            self.rejected.append(RejectedLine(line, reason))

    def as_answer(self) -> dict[str, object]:
        return {"accepted": self.accepted, "cases_opened": self.cases_opened, "already_known": self.already_known,
                "rejected": [{"line": r.line, "reason": r.reason} for r in self.rejected],
                "rejected_total": self.rejected_total, "lines": self.lines, "position": self.position}


async def numbered_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[tuple[int, bytes | None]]:
    """(line number, line without its end) for each line; None for a line over MAX_LINE_BYTES."""
    number, pending, too_long = 0, b"", False
    async for chunk in chunks:
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) != -1:
            number += 1
            yield number, (None if too_long or end - start > MAX_LINE_BYTES else pending[start:end].rstrip(b"\r"))
            too_long, start = False, end + 1
        pending = pending[start:]
        if len(pending) > MAX_LINE_BYTES:
            too_long, pending = True, b""  # keep reading to its end, but not its bytes
    if pending or too_long:
        yield number + 1, None if too_long else pending.rstrip(b"\r")


def _field_problem(name: str, value: str) -> str | None:
    if not value:
        return f"{name} is empty"
    if len(value) > MAX_FIELD:
        return f"{name} is longer than {MAX_FIELD} characters"
    if "\x00" in value:  # PostgreSQL text cannot hold it: the read side would stop on it
        return f"{name} contains the NUL character"
    # The domain's own test, so no line the domain would refuse gets past this point.
    if holds_card_data(name, value):
        return f"{name} holds card data (a card number or security code); it is never stored"
    return None


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
_UNKNOWN_FIELD = re.compile(r"unknown field `(.*)`", re.S)


def _said_safely(name: str) -> str:
    """A column or key name as a reason may repeat it: only when it is a plain name, never card data."""
    return name if _FIELD_NAME.fullmatch(name) and not contains_card_data(name) else "(a name not repeated here)"


def _invalid_line(error: msgspec.ValidationError) -> str:
    """msgspec's reason, without the line's content: an unknown key could be a card number."""
    unknown = _UNKNOWN_FIELD.search(str(error))
    if unknown:
        return f"unknown field {_said_safely(unknown.group(1))}"
    return "invalid: " + redact_card_numbers(str(error))[:200]


class BreachIntake:
    """Reads one upload of a breach list and opens the outreach cases it names."""

    def __init__(self, store: EventStore, mapper: CaseEventMapper, personal_data: PersonalData,
                 breach: BreachRecorded, actor: Actor, keys: CustomerKeys | None = None, *,
                 share: float = 1.0) -> None:
        self._store, self._mapper, self._personal = store, mapper, personal_data
        self._breach, self._actor = breach, actor
        self._keys = keys  # seals each case's personal data under its customer's key (issue 21)
        self._share = share  # of the time the intake takes, agents' reads the rest (turn_taking.py)

    async def take(self, chunks: AsyncIterable[bytes], form: ListFormat) -> IntakeReport:
        """Take in every line; raise UnreadableListError before writing anything if the list is unreadable."""
        report = IntakeReport()
        header: dict[str, int] | None = None
        batch: list[tuple[int, CheckedLine]] = []
        writing: asyncio.Task[None] | None = None
        anything = False
        try:
            async for number, raw in numbered_lines(chunks):
                report.lines = number
                if number % LINES_PER_TURN == 0:
                    await give_way(self._share)  # a buffered body is read without a pause otherwise
                if raw is None:
                    anything = True
                    report.reject(number, f"line is longer than {MAX_LINE_BYTES} bytes")
                    continue
                if number == 1:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a byte order mark some editors write
                if not raw.strip():
                    continue  # blank lines (a trailing newline) are nobody's card
                anything = True
                if number > MAX_LINES:
                    report.reject(number, f"beyond the {MAX_LINES:,} lines of one upload; send the rest separately")
                    continue
                if form == "csv" and header is None:
                    header = _csv_header(raw)
                    continue
                parsed = self._parse(raw, form, header)
                if isinstance(parsed, str):
                    report.reject(number, parsed)
                    continue
                batch.append((number, parsed))
                if len(batch) >= CHUNK_LINES:
                    # Read and check the next chunk while this one is written.
                    if writing is not None:
                        await writing
                    writing = asyncio.create_task(self._write(batch, report))
                    batch = []
            if form == "csv" and header is None:
                raise UnreadableListError("a CSV list starts with a header line naming " + ", ".join(COLUMNS))
            if not anything:  # an empty upload is a client's mistake, not a list of no cards
                raise UnreadableListError("the list holds no line: send one affected card per line")
            if writing is not None:
                await writing
                writing = None
            if batch:
                await self._write(batch, report)
        finally:
            if writing is not None:  # the upload broke off: let the chunk in flight finish or fail on its own
                await asyncio.gather(writing, return_exceptions=True)
        return report

    def _parse(self, raw: bytes, form: ListFormat, header: dict[str, int] | None) -> CheckedLine | str:
        """The line's checked fields, or why the line is rejected."""
        if form == "ndjson":
            try:
                line = _decode_line(raw)
            except msgspec.ValidationError as error:
                return _invalid_line(error)
            except msgspec.DecodeError:
                return "not a JSON object on one line"
            values = [line.customer_id, line.name, line.registered_phone, line.card_id, line.last4, line.network]
        else:
            assert header is not None
            try:
                [row] = list(csv.reader([raw.decode("utf-8")]))
            except (UnicodeDecodeError, csv.Error, ValueError):
                return "not a CSV record of UTF-8 text on one line"
            if len(row) != len(header):
                return f"expected {len(header)} fields, found {len(row)}"
            values = [row[header[c]] for c in COLUMNS]
        checked = CheckedLine(*(v.strip() for v in values))
        for column, value in zip(COLUMNS, checked, strict=True):
            problem = _field_problem(column, value)
            if problem is not None:
                return problem
        if not is_last4(checked.last4):
            return "last4 must be four digits"
        try:
            self._personal.e164(checked.registered_phone, "registered_phone")
        except PhoneNumberRefused as refused:
            return f"registered_phone is {refused.detail}"
        return checked

    def _events_of(self, line: CheckedLine) -> list[msgspec.Struct]:
        customer = Customer(customer_id=line.customer_id, name_masked=mask_name(line.name),
                            name_key=self._personal.name_key(line.name),
                            phone=self._personal.phone(line.registered_phone, field="registered_phone"))
        card = Card(card_id=line.card_id, last4=line.last4, network=line.network.lower(), kind="primary")
        return list(open_breach_outreach(self._breach, actor=self._actor, at=datetime.now(UTC),
                                         customer=customer, card=card))

    @staticmethod
    def _customer_of(events: list[msgspec.Struct]) -> str:
        opened = events[0]
        assert isinstance(opened, CaseOpened)
        return opened.customer.customer_id

    async def _write(self, batch: list[tuple[int, CheckedLine]], report: IntakeReport) -> None:
        """Open the batch's cases; a case that exists is already known."""
        breach_id = self._breach.originator_id
        case_ids: list[UUID] = []
        for n, (_, line) in enumerate(batch, 1):  # a UUID5 (SHA-1) each: 2,000 were ~10 ms in one step
            case_ids.append(breach_case_id(breach_id, line.card_id))
            if n % (4 * LINES_PER_TURN) == 0:
                await give_way(self._share)
        known = await streams_begun(self._store.pool, case_ids)
        fresh: dict[UUID, list[msgspec.Struct]] = {}
        for done, (case_id, (number, line)) in enumerate(zip(case_ids, batch, strict=True)):
            if done % LINES_PER_TURN == LINES_PER_TURN - 1:
                await give_way(self._share)
            if case_id in known or case_id in fresh:
                report.already_known += 1
            else:
                try:
                    fresh[case_id] = self._events_of(line)
                except (RuleViolation, ValueError) as refused:  # the domain's rules have the last word
                    report.reject(number, refused.detail if isinstance(refused, RuleViolation) else "not valid")
                    continue
            report.accepted += 1
        if self._keys is not None and fresh:  # every new customer's key in one round trip
            cases = list(fresh)
            sealed = await self._keys.seal_many([(self._customer_of(fresh[c]), fresh[c]) for c in cases])
            fresh = dict(zip(cases, sealed, strict=True))  # type: ignore[arg-type]
        # Handed to the store APPENDS_IN_FLIGHT at a time: the store's group commit batches them
        # still, and when a batch commits only that many appends wake at once; 2,000 woken
        # together were 2,000 task steps queued ahead of every agent's read (10-20 ms).
        outcomes: list[list[int] | BaseException] = []
        appends: list[asyncio.Future[list[int]]] = []
        for events in fresh.values():
            appends.append(asyncio.ensure_future(self._store.append([self._mapper.to_stored_event(e) for e in events])))
            if len(appends) % LINES_PER_TURN == 0:
                await give_way(self._share)
            if len(appends) == APPENDS_IN_FLIGHT:
                outcomes += await asyncio.gather(*appends, return_exceptions=True)
                appends = []
        outcomes += await asyncio.gather(*appends, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, StreamConflictError):
                report.already_known += 1  # another upload opened it a moment ago
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                report.cases_opened += 1
                report.position = max(report.position or 0, outcome[-1])


def _csv_header(raw: bytes) -> dict[str, int]:
    try:
        [names] = list(csv.reader([raw.decode("utf-8-sig")]))
    except (UnicodeDecodeError, csv.Error, ValueError):
        raise UnreadableListError("the CSV header is not one line of UTF-8 text") from None
    columns = [n.strip().lower() for n in names]
    missing = [c for c in COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in COLUMNS]
    if missing or unknown or len(set(columns)) != len(columns):
        detail = []
        if missing:
            detail.append("missing " + ", ".join(missing))
        if unknown:
            # A security code or card number column is exactly what must never be read in.
            detail.append("unknown " + ", ".join(_said_safely(c) for c in unknown))
        if len(set(columns)) != len(columns):
            detail.append("a column named twice")
        raise UnreadableListError("the CSV header must name " + ", ".join(COLUMNS) + ": " + "; ".join(detail))
    return {c: columns.index(c) for c in COLUMNS}
