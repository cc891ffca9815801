"""The webhook sender: one follower of the event log per subscription.

Runs in a process of its own (`casedesk webhooks`, started by `casedesk serve`
as a child): delivery waits on other systems' receivers (up to 10 s a
request, retries for days) and a replay can send millions of events, none of
which should take the API's or the projections' core. Like a projection, it
holds a PostgreSQL session advisory lock, so across any number of processes
one sender works and a second stands by; it wakes on the store's NOTIFY (new
events) and on `webhooks_changed` (a subscription created, paused, resumed,
replayed or deleted), with a slow timer as a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from datetime import timedelta
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from standardwebhooks.webhooks import Webhook

from casedesk.services.effects import webhook_delivery as delivery
from casedesk.services.effects.peak_yield import CpuGauge, PeakYield, own_process_seconds
from casedesk.services.effects.webhook_payloads import read_after
from casedesk.services.effects.webhook_subscriptions import (
    CHANGED_CHANNEL,
    SecretSeal,
    delivery_row,
    forget_attempts_older_than,
    is_public_address,
    to_deliver,
)
from casedesk.services.privacy.customer_keys import ERASED_CHANNEL, CustomerKeys
from casedesk.services.settings import Settings
from casedesk.services.store.database import keeps_session_state
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import CHANNEL

log = structlog.get_logger("casedesk.webhooks")

SENDER_LOCK = 7_141_013
# Advisory locks are the database's, not a schema's: keyed by schema too, senders of two
# casedesk schemas in one database (tests isolate that way) do not wait for each other.
_PER_SCHEMA = "hashtext(current_schema())"
BATCH = 500
FALLBACK_POLL_SECONDS = 1.0
# Woken by an append, a follower waits this long before reading: on a busy desk the appends
# of the window go out as one batch (one read, one record, one position move) instead of a
# batch of one or two events per append, each costing those round trips. Webhooks promise at
# least once and per case in order, not within milliseconds.
GATHER_SECONDS = 0.05
KEEP_ATTEMPTS = "1 day"


class PublicOnlyResolver(AbstractResolver):
    """Resolves as usual, but refuses a host that resolves to a private address at sending
    time too (a name that moved to 10.0.0.5 after its subscription was checked)."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if not all(is_public_address(result["host"]) for result in found):
            raise OSError(f"{host} resolves to a private address")
        return found

    async def close(self) -> None:
        await self._inner.close()


class WebhookSender:
    """Delivers every active subscription's events (and probes the failing ones)."""

    def __init__(self, pool: asyncpg.Pool, pii_key: str, policy: delivery.RetryPolicy, *,
                 allow_private: bool = False, master_key: str | None = None, peak: PeakYield | None = None) -> None:
        self.pool, self.policy = pool, policy
        self.peak = peak or PeakYield(0.0)  # (never rests unless given one: run_sender gives serve's)
        # Opens sealed personal data in each payload as it is sent (issue 21): a receiver
        # gets "[erased]" once the customer's key is gone, as every reader does.
        self._keys = CustomerKeys(pool, master_key or "derived from the PII key:" + pii_key)
        self._seal = SecretSeal(pii_key)
        self._mapper = CaseEventMapper()
        self._allow_private = allow_private
        self._followers: dict[UUID, asyncio.Task[None]] = {}
        self._wake: dict[UUID, asyncio.Event] = {}
        self._revisions: dict[UUID, int] = {}  # the row revision each follower started from
        self._changed = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    def _on_event(self, *_: Any) -> None:
        for event in self._wake.values():
            event.set()

    def _on_change(self, *_: Any) -> None:
        self._changed.set()
        self._on_event()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; wait for the sender lock first if another process holds it."""
        connector = aiohttp.TCPConnector(limit=256, limit_per_host=delivery.IN_FLIGHT,
                                         resolver=None if self._allow_private else PublicOnlyResolver())
        async with aiohttp.ClientSession(connector=connector) as self._session, self.pool.acquire() as holder:
            keeps_session_state(holder)
            while not await holder.fetchval(f"SELECT pg_try_advisory_lock($1, {_PER_SCHEMA})", SENDER_LOCK):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FALLBACK_POLL_SECONDS):
                        await stop.wait()
                        return
            await holder.add_listener(CHANNEL, self._on_event)
            await holder.add_listener(CHANGED_CHANNEL, self._on_change)
            await holder.add_listener(ERASED_CHANNEL, self._keys.heard)
            try:
                await self._supervise(stop)
            finally:
                for task in self._followers.values():
                    task.cancel()
                await asyncio.gather(*self._followers.values(), return_exceptions=True)
                with contextlib.suppress(Exception):
                    await holder.execute(f"SELECT pg_advisory_unlock($1, {_PER_SCHEMA})", SENDER_LOCK)

    async def _supervise(self, stop: asyncio.Event) -> None:
        """Keep one follower per subscription that is active or failing; prune old attempts."""
        stopping = asyncio.create_task(stop.wait())
        stopping.add_done_callback(lambda _: self._changed.set())
        try:
            rounds = 0
            while not stop.is_set():
                self._changed.clear()
                await self._match_followers()
                if rounds % 600 == 0:
                    await forget_attempts_older_than(self.pool, KEEP_ATTEMPTS)
                rounds += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FALLBACK_POLL_SECONDS):
                        await self._changed.wait()
        finally:
            stopping.cancel()

    async def _match_followers(self) -> None:
        """Start a follower for each subscription to deliver; stop those paused, deleted or
        changed by an admin (a changed one starts again from its row)."""
        wanted = await to_deliver(self.pool)
        for webhook_id in list(self._followers):
            if self._revisions.get(webhook_id) != wanted.get(webhook_id):
                self._followers.pop(webhook_id).cancel()
        for webhook_id, revision in wanted.items():
            if webhook_id not in self._followers or self._followers[webhook_id].done():
                self._wake[webhook_id] = asyncio.Event()
                self._revisions[webhook_id] = revision
                self._followers[webhook_id] = asyncio.create_task(self._follow(webhook_id))

    async def _follow(self, webhook_id: UUID) -> None:
        while True:
            try:
                await self._deliver_from_position(webhook_id)
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # database gone, or a row that cannot be read: log, back off, again
                log.exception("webhook_follower_failed", webhook_id=str(webhook_id))
                await asyncio.sleep(1.0)

    async def _deliver_from_position(self, webhook_id: UUID) -> None:
        """Until the subscription is paused, disabled or deleted (the supervisor cancels us then too)."""
        assert self._session is not None
        receiver: delivery.Receiver | None = None
        wake = self._wake[webhook_id]
        caught_up = False
        while True:
            if caught_up:  # wait for more (a full batch goes on at once)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FALLBACK_POLL_SECONDS):
                        await wake.wait()
                await asyncio.sleep(GATHER_SECONDS)
            await self.peak.rest_while_peak(webhook_id)
            row = await delivery_row(self.pool, webhook_id)
            if row is None or row["state"] not in ("active", "failing"):
                return
            if receiver is None or receiver.url != row["url"]:
                receiver = delivery.Receiver(webhook_id, row["url"], Webhook(self._seal.open(row["secret_sealed"])),
                                             self._session)
            wake.clear()
            deliveries, last, read = await read_after(self.pool, self._mapper, row["position"], BATCH,
                                                      row["event_types"], keys=self._keys)
            caught_up = read < BATCH
            self.peak.read(webhook_id, at_end=caught_up)
            if last is None:
                continue
            if not await self._deliver(receiver, deliveries, row["failing_since"]):
                return
            await delivery.delivered(self.pool, webhook_id, row["position"], last, bool(deliveries))
            receiver.attempts.clear()

    async def _deliver(self, receiver: delivery.Receiver, deliveries: list[Any], failing_since: Any) -> bool:
        """Deliver a batch; False when the subscription stopped (410); a failing one is probed slowly."""
        while True:
            try:
                await delivery.deliver_batch(self.pool, receiver, deliveries, self.policy, failing_since)
                failing_since = None  # (read again by deliver_batch after a failure)
                return True
            except delivery.ReceiverGoneError as gone:
                await delivery.mark(self.pool, receiver.webhook_id, "disabled", str(gone))
                return False
            except delivery.NotDeliveredError as error:
                await delivery.mark(self.pool, receiver.webhook_id, "failing", str(error))
                await asyncio.sleep(self.policy.max_wait)


async def run_sender(pool: asyncpg.Pool, settings: Settings, stop: asyncio.Event, *, own_process: bool = False) -> None:
    """The sender until `stop`; a lost database connection costs a pause, not the process.

    `own_process`: run by `casedesk webhooks`, so its own CPU time is not the load it rests for
    (in serve's process, that time is the API's too)."""
    policy = delivery.RetryPolicy(window=timedelta(hours=settings.webhook_retry_hours),
                                  first_wait=settings.webhook_retry_first_wait,
                                  max_wait=settings.webhook_retry_max_wait)
    sender = WebhookSender(pool, settings.pii_key, policy, allow_private=settings.webhook_allow_private,
                           master_key=settings.master_key_or_derived,
                           peak=PeakYield(settings.webhook_peak_delay,
                                          gauge=CpuGauge(own=own_process_seconds) if own_process else CpuGauge()))
    while not stop.is_set():
        try:
            await sender.run(stop)
        except Exception:
            log.exception("webhook_sender_failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop.wait()
