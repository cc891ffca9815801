"""Delivering one subscription's events: signed, at least once, per case in log order.

A batch of the log after the subscription's position is sent as one chain per
case: a case's events one after another, the cases side by side (up to
IN_FLIGHT requests at once). An event that is not answered with a 2xx stops its
case's chain; the chains left are sent again after a backoff (stamina:
exponential, with jitter) until all are through, and only then does the
position move past the batch. So nothing is skipped, a case's events arrive in
order, and a crash at any point sends the batch again: the same `webhook-id`
(the event's id) lets the receiver drop what it already has.

Past the retry window (CASEDESK_WEBHOOK_RETRY_HOURS, counted from the first
failure, across restarts) the subscription is marked `failing`; it keeps its
position and is tried again every CASEDESK_WEBHOOK_RETRY_MAX_WAIT until the
receiver answers. `410 Gone` disables it at once. Redirects are not followed;
each request has 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import aiohttp
import asyncpg
import stamina
import structlog
from standardwebhooks.webhooks import Webhook

from casedesk.services.effects import webhook_subscriptions as subscriptions
from casedesk.services.effects.webhook_payloads import Delivery

log = structlog.get_logger("casedesk.webhooks")

REQUEST_SECONDS = 10.0
IN_FLIGHT = 64  # requests at once to one receiver
GONE = 410


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long and how often a failing event is tried again."""

    window: timedelta
    first_wait: float
    max_wait: float


class ReceiverGoneError(Exception):
    """The receiver answered 410 Gone: it wants no more."""


class NotDeliveredError(Exception):
    """Some events of the batch got no 2xx; the message is the last error."""


@dataclass(slots=True)
class _Try:
    delivery: Delivery
    attempt: int
    status: int
    error: str | None
    at: datetime


@dataclass(slots=True)
class Receiver:
    """One subscription's receiver: where, how to sign, what was tried."""

    webhook_id: UUID
    url: str
    signer: Webhook
    session: aiohttp.ClientSession
    attempts: dict[UUID, int] = field(default_factory=dict)

    async def send(self, delivery: Delivery) -> _Try:
        attempt = self.attempts.get(delivery.event_id, 0) + 1
        self.attempts[delivery.event_id] = attempt
        now = datetime.now(UTC)
        msg_id = str(delivery.event_id)
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": self.signer.sign(msg_id, now, delivery.body),
                   "content-type": "application/json", "user-agent": "casedesk-webhooks/1"}
        try:
            async with self.session.post(self.url, data=delivery.body, headers=headers, allow_redirects=False,
                                         timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS)) as answer:
                await answer.read()
                status = answer.status
        except TimeoutError:
            return _Try(delivery, attempt, 0, "no answer within 10 s", now)
        except (aiohttp.ClientError, OSError) as error:
            return _Try(delivery, attempt, 0, f"no answer: {type(error).__name__}", now)
        return _Try(delivery, attempt, status, None if 200 <= status < 300 else f"HTTP {status}", now)


def per_case(deliveries: Sequence[Delivery]) -> list[list[Delivery]]:
    """The batch as one chain per case, each in log order."""
    chains: dict[UUID, list[Delivery]] = {}
    for d in deliveries:
        chains.setdefault(d.case_id, []).append(d)
    return list(chains.values())


async def _send_chains(receiver: Receiver, chains: list[list[Delivery]]) -> tuple[list[list[Delivery]], list[_Try]]:
    """Send every chain; return what is left of each chain that stopped, and every try."""
    gate = asyncio.Semaphore(IN_FLIGHT)
    tries: list[_Try] = []

    async def chain(events: list[Delivery]) -> list[Delivery]:
        for n, delivery in enumerate(events):
            async with gate:
                result = await receiver.send(delivery)
            tries.append(result)
            if result.error is not None:
                return events[n:]
        return []

    left = await asyncio.gather(*(chain(c) for c in chains))
    return [c for c in left if c], tries


async def _record(pool: asyncpg.Pool, webhook_id: UUID, tries: list[_Try], next_at: datetime | None) -> None:
    if not tries:
        return
    failed = [t for t in tries if t.error is not None]
    with contextlib.suppress(asyncpg.ForeignKeyViolationError):  # deleted meanwhile: nothing to keep
        await subscriptions.keep_attempts(
            pool, webhook_id,
            [(t.delivery.event_id, t.delivery.position, t.attempt, t.status, t.error, t.at,
              next_at if t.error is not None else None) for t in tries],
            f"{failed[-1].error} (event {failed[-1].delivery.event_id})" if failed else None,
            failed[0].at if failed else None)


async def deliver_batch(pool: asyncpg.Pool, receiver: Receiver, deliveries: Sequence[Delivery],
                        policy: RetryPolicy, failing_since: datetime | None = None) -> None:
    """Send a batch until every event has had a 2xx, retrying with backoff.

    `failing_since`, when the caller read it with the subscription, saves reading
    it again. Raises ReceiverGoneError on a 410, NotDeliveredError once the retry
    window is over.
    """
    chains = per_case(deliveries)
    since = failing_since or await subscriptions.failing_since(pool, receiver.webhook_id)
    left_in_window = policy.window - (datetime.now(UTC) - since) if since else policy.window
    async for attempt in stamina.retry_context(
        on=NotDeliveredError, attempts=None, timeout=max(left_in_window, timedelta(milliseconds=1)),
        wait_initial=policy.first_wait, wait_max=policy.max_wait, wait_jitter=min(1.0, policy.first_wait),
    ):
        with attempt:
            chains, tries = await _send_chains(receiver, chains)
            next_at = datetime.now(UTC) + timedelta(seconds=attempt.next_wait) if chains else None
            await _record(pool, receiver.webhook_id, tries, next_at)
            gone = [t for t in tries if t.status == GONE]
            if gone:
                raise ReceiverGoneError(f"HTTP 410 Gone (event {gone[0].delivery.event_id})")
            if chains:
                log.warning("webhook_not_delivered", webhook_id=str(receiver.webhook_id), cases_waiting=len(chains),
                            attempt=attempt.num, retry_in_s=round(attempt.next_wait, 1))
                raise NotDeliveredError(tries[-1].error if tries else "not delivered")


async def delivered(pool: asyncpg.Pool, webhook_id: UUID, old: int, new: int, sent: bool) -> bool:
    """Move the position past a delivered batch; False if it was moved meanwhile (a replay)."""
    return await subscriptions.move_past(pool, webhook_id, old, new, sent)


async def mark(pool: asyncpg.Pool, webhook_id: UUID, state: str, error: str) -> None:
    """`failing` (retry window over) or `disabled` (410); the position stays where it is."""
    await subscriptions.mark_stopped(pool, webhook_id, state, error)
    log.warning("webhook_" + state, webhook_id=str(webhook_id), error=error)
