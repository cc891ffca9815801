"""A call-centre load client with a ledger, run as its own process by the fault tests.

Several desks work cases over HTTP at once, each through a realistic script
(open with a call, verify, note, suspend, dispute, callback, escalate, end,
call back out, resolve). Every POST carries its own Idempotency-Key, and every
attempt's outcome goes to the ledger, one JSON object a line:

- `acknowledged`: a 2xx, with the answer (case id, version, position, events);
- `unacknowledged`: sent, but no answer that says what happened (connection
  lost, timeout, 5xx, or 409 "idempotency-key-in-use" which means "ask again");
- `refused`: a definite 4xx.

A desk whose command is left unacknowledged gives up that case (it cannot know
the case's state) and opens another. Once the stop file appears, the desks
finish, then every unacknowledged command is sent again, with its own key and
body, until it is acknowledged or definitely refused; then a sample of
acknowledged commands is sent once more, as a duplicate delivery would be.
The last line is `{"outcome": "done", ...}`.

    python -m tests.faults.ledger_client --url http://127.0.0.1:8080 --token T \
        --ledger ledger.jsonl --stop stop-file [--desks 6]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import string
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import aiohttp

REQUEST_TIMEOUT = 10.0
RETRY_DEADLINE = 90.0
DUPLICATES = 40


@dataclass
class Command:
    """One POST as first sent: retried later with exactly this key and body."""

    path: str
    body: dict[str, Any]
    key: str = field(default_factory=lambda: uuid.uuid4().hex)


class Unacknowledged(Exception):
    """The command's fate is unknown to the client."""


class Refused(Exception):
    """The server answered with a definite 4xx."""


class Ledger:
    """Appends one JSON line per attempt and flushes it at once."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.counts: dict[str, int] = {}

    def write(self, outcome: str, **fields: Any) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self.out.write(json.dumps({"outcome": outcome, "at": time.time(), **fields}) + "\n")
        self.out.flush()


class Desk:
    """One agent's seat: sends commands and writes what came of them."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str, ledger: Ledger) -> None:
        self.session, self.url, self.ledger = session, url, ledger
        self.headers = {"Authorization": f"Bearer {token}"}
        self.unacknowledged: list[Command] = []
        self.acknowledged: list[tuple[Command, dict[str, Any]]] = []

    async def send(self, command: Command, phase: str) -> dict[str, Any]:
        """POST once; the answer on a 2xx, else Unacknowledged or Refused (both written down)."""
        headers = {**self.headers, "Idempotency-Key": command.key}
        record = {"phase": phase, "key": command.key, "method": "POST", "path": command.path, "body": command.body}
        try:
            async with self.session.post(self.url + command.path, json=command.body, headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as r:
                text = await r.text()
                status = r.status
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            self.ledger.write("unacknowledged", **record, error=type(error).__name__)
            raise Unacknowledged from error
        answer = _json_or_text(text)
        if 200 <= status < 300:
            self.ledger.write("acknowledged", **record, status=status, answer=answer)
            self.acknowledged.append((command, answer))
            return answer  # type: ignore[no-any-return]
        if status >= 500 or status in (408, 429) or (status == 409 and _kind(answer) == "idempotency-key-in-use"):
            self.ledger.write("unacknowledged", **record, status=status, answer=answer)
            raise Unacknowledged(status)
        self.ledger.write("refused", **record, status=status, answer=answer)
        raise Refused(status)

    async def work(self, stop: asyncio.Event, serial: itertools.count[int]) -> None:
        while not stop.is_set():
            n = next(serial)
            script = work_a_case(n)
            command = next(script)
            try:
                while True:
                    answer = await self.send(command, "load")
                    command = script.send(answer)
            except StopIteration:
                continue
            except Unacknowledged:
                self.unacknowledged.append(command)
                await asyncio.sleep(0.2)  # the server or database is down: do not spin
            except Refused:
                await asyncio.sleep(0.05)


def work_a_case(n: int):  # type: ignore[no-untyped-def]
    """A case's commands in order; each yield gets the answer of the command it sent."""
    phone = f"+81 80 {n % 10_000:04d} {random.randrange(10_000):04d}"
    opened = yield Command("/v1/cases", {
        "customer": {"customer_id": f"cust-{uuid.uuid4().hex[:10]}", "name": "Taro Yamada",
                     "registered_phone": phone},
        "cards": [{"card_id": "card-p", "last4": "4242", "network": "visa", "kind": "primary"},
                  {"card_id": "card-f", "last4": "4243", "network": "visa", "kind": "family",
                   "primary_card_id": "card-p"}],
        "reason": "unrecognized_charge", "channel": "phone",
        "summary": f"Customer {n} does not recognise a USD 19.95 charge from WEBTEL",
        "amount_at_risk": {"amount": "19.95", "currency": "USD"},
        "contact": {"direction": "inbound", "channel": "phone", "phone": phone, "department": "fraud"}})
    case, call = f"/v1/cases/{opened['case_id']}", opened["contact_id"]
    yield Command(f"{case}/identity-checks", {"contact_id": call, "method": "knowledge_based", "passed": True,
                                               "factors": ["name", "date_of_birth"]})
    yield Command(f"{case}/notes", {"text": f"note {tag()} on case {n}"})
    yield Command(f"{case}/contact-details", {"contact_id": call, "daytime_phone": "+81 3 5555 0101"})
    yield Command(f"{case}/cards/card-p/suspend", {"reason": "unrecognised charge", "include_linked": n % 2 == 0})
    yield Command(f"{case}/transactions/reviewed", {"contact_id": call, "transactions": [
        {"transaction_id": f"tx-{n}", "merchant": "WEBTEL", "amount": {"amount": "19.95", "currency": "USD"},
         "occurred_at": (datetime.now(UTC) - timedelta(days=3)).isoformat(), "answer": "unrecognized"}]})
    disputed = yield Command(f"{case}/disputes", {
        "contact_id": call, "transaction_id": f"tx-{n}", "merchant": "WEBTEL",
        "amount": {"amount": "19.95", "currency": "USD"}, "reason_code": "10.4", "network": "visa"})
    due = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    promised = yield Command(f"{case}/callbacks", {"due_at": due, "phone": "registered",
                                                    "reason": "tell the dispute outcome", "department": "fraud"})
    yield Command(f"{case}/escalations", {"to_department": "credit_management", "priority": 1 + n % 5,
                                           "reason": "decide on stopping WEBTEL"})
    yield Command(f"{case}/notes", {"text": f"pinned {tag()}: stop only WEBTEL", "pinned": True,
                                    "for_department": "credit_management"})
    yield Command(f"{case}/contacts/{call}/end", {"outcome": "connected", "summary": "customer will wait"})
    outbound = yield Command(f"{case}/contacts", {"direction": "outbound", "channel": "phone", "phone": phone,
                                                   "department": "fraud", "purpose": "the dispute outcome"})
    yield Command(f"{case}/disputes/{disputed['dispute_id']}/resolve", {"outcome": "upheld", "note": "refunded"})
    yield Command(f"{case}/callbacks/{promised['callback_id']}/complete", {"note": "told the customer"})
    yield Command(f"{case}/contacts/{outbound['contact_id']}/end", {"outcome": "connected", "summary": "told"})
    yield Command(f"{case}/resolve", {"resolution": "refunded", "summary": "WEBTEL charge refunded"})
    yield Command(f"{case}/notes", {"text": f"closing note {tag()}"})


def tag() -> str:
    """A word no other note has; letters only, since digit runs may be redacted as card numbers."""
    return "".join(random.choices(string.ascii_lowercase, k=24))


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _kind(answer: Any) -> str:
    return str(answer.get("type", "")).rsplit("/", 1)[-1] if isinstance(answer, dict) else ""


async def retry_until_answered(desk: Desk, command: Command, phase: str = "retry") -> None:
    """Send again with the same key until a 2xx or a definite 4xx (or the deadline)."""
    deadline = time.monotonic() + RETRY_DEADLINE
    pause = 0.1
    while time.monotonic() < deadline:
        try:
            await desk.send(command, phase)
            return
        except Refused:
            return
        except Unacknowledged:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)


async def watch_for(path: Path, stop: asyncio.Event) -> None:
    while not await asyncio.to_thread(path.exists):
        await asyncio.sleep(0.1)
    stop.set()


async def main(args: argparse.Namespace, ledger: Ledger) -> None:
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_for(Path(args.stop), stop))
    async with aiohttp.ClientSession() as session:
        desks = [Desk(session, args.url, args.token, ledger) for _ in range(args.desks)]
        serial = itertools.count()
        await asyncio.gather(*(d.work(stop, serial) for d in desks))
        await watcher
        await asyncio.gather(*(retry_until_answered(d, c) for d in desks for c in d.unacknowledged))
        sample = random.sample([(d, c) for d in desks for c, _ in d.acknowledged],
                               k=min(DUPLICATES, sum(len(d.acknowledged) for d in desks)))
        for desk, command in sample:
            await retry_until_answered(desk, command, "duplicate")
    ledger.write("done", counts=dict(ledger.counts))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--stop", required=True, help="the load ends when this file exists")
    parser.add_argument("--desks", type=int, default=6)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    with open(arguments.ledger, "a", encoding="utf-8") as ledger_file:
        asyncio.run(main(arguments, Ledger(ledger_file)))
