"""Privacy: what sealing personal data under per-customer keys costs (issue 21).

Two figures, each against the same work without sealing in the same run
(`CASEDESK_SEAL_PERSONAL_DATA=0`, the reference run's setting only):

- `POST /v1/cases/{id}/notes` throughput: two `casedesk serve` as shipped
  (projections in their worker process), each on a fresh database, one sealing
  and one not; bench_http's note load (CONNECTIONS at once on CASES cases) in
  ROUNDS alternating rounds (the order swapped every round), the median round
  of each. A sealed note costs an AES-GCM encryption of its text (the key is
  in memory after the case's first command) and a longer row; a read of it
  one regex pass and a decryption per token.
- rebuild rate: bench_replay's mixed log of REBUILD_EVENTS events written
  twice, in the clear and with every personal field sealed (each customer's
  key); all projections rebuilt from zero on each, alternately. The
  projections fold tokens as they are (they never open them), so the cost is
  the longer rows.

Target for both: >= 0.9x.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from datetime import UTC
from typing import Any

from eventsourcing.persistence import StoredEvent

from casedesk.domain.events import CaseOpened
from casedesk.projections.catalogue import all_projections
from casedesk.projections.runner import REBUILD_BATCH, ProjectionRunner, rebuild
from casedesk.services.privacy.customer_keys import CustomerKeys
from casedesk.services.store.database import create_pool
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from casedesk.services.tokens import issue_token
from tests.bench import BenchContext, Figure
from tests.bench.bench_http import NOTE, NOTE_PATH, check_errors, median_round, open_cases
from tests.bench.bench_replay import write_mixed_log
from tests.bench.support import (
    TOKEN_SECRET,
    LoadResult,
    Server,
    casedesk_command,
    casedesk_env,
    free_port,
    fresh_database,
    load,
)

DEFAULT_SECONDS = 10.0  # per kind, split over ROUNDS
ROUNDS = 5
CONNECTIONS = 32
CASES = 320
REBUILD_EVENTS = 30_000
SMOKE_REBUILD_EVENTS = 5_000
REBUILD_ROUNDS = 3
AT_LEAST = 0.9
MASTER = "bench-master-key"


async def note_figure(ctx: BenchContext, seconds: float) -> Figure:
    token = issue_token(TOKEN_SECRET, sub="bench-agent", name="B. Ench", role="agent", departments=["fraud"],
                        ttl=4 * 3600)
    each = max(1, round(seconds / ROUNDS))
    async with AsyncExitStack() as stack:
        servers: dict[str, Server] = {}
        ids: dict[str, list[str]] = {}
        for kind, seal in (("sealed", "1"), ("clear", "0")):
            db = await stack.enter_async_context(fresh_database(ctx, f"bench_privacy_{kind}", migrated=False))
            port = free_port()
            servers[kind] = await stack.enter_async_context(Server(
                f"casedesk-{kind}", casedesk_command(port),
                {**casedesk_env(db.dsn), "CASEDESK_PROJECTIONS": "process", "CASEDESK_MASTER_KEY": MASTER,
                 "CASEDESK_SEAL_PERSONAL_DATA": seal}, port))
            ids[kind] = await open_cases(servers[kind].url, token, CASES)
            await load(servers[kind].url, NOTE_PATH, ids[kind], NOTE, token, CONNECTIONS, 1)  # warm up
        results: dict[str, list[LoadResult]] = {"sealed": [], "clear": []}
        for n in range(ROUNDS):
            for kind in (("sealed", "clear") if n % 2 == 0 else ("clear", "sealed")):
                result = await load(servers[kind].url, NOTE_PATH, ids[kind], NOTE, token, CONNECTIONS, each)
                check_errors(kind, result, servers[kind])
                results[kind].append(result)
    sealed, clear = median_round(results["sealed"]), median_round(results["clear"])
    return Figure.versus("POST note with personal data sealed (AES-GCM, per-customer key)", sealed.per_second,
                         "req/s", "the same with CASEDESK_SEAL_PERSONAL_DATA=0", clear.per_second, at_least=AT_LEAST)


async def sealed_copy(source: EventStore, target: EventStore, keys: CustomerKeys) -> int:
    """The source's log appended to the target with every personal field sealed under its customer's key."""
    mapper = CaseEventMapper()
    customers: dict[Any, str] = {}
    after, copied = 0, 0
    while notifications := await source.read_notifications(after + 1, 2000):
        events = [mapper.to_domain_event(n) for n in notifications]
        for event in events:
            if isinstance(event, CaseOpened):
                customers[event.originator_id] = event.customer.customer_id
        batches = [(customers.get(e.originator_id, "merchants"), [e]) for e in events]
        sealable = [(i, b) for i, b in enumerate(batches) if b[0] != "merchants"]
        sealed = await keys.seal_many([b for _, b in sealable])
        out: list[Any] = list(events)
        for (i, _), [event] in zip(sealable, sealed, strict=True):
            out[i] = event
        await target.append([mapper.to_stored_event(e) if not isinstance(e, StoredEvent) else e for e in out])
        after, copied = notifications[-1].id, copied + len(notifications)
    return copied


async def rebuild_rate(pool: Any, total: int) -> float:
    store = EventStore(pool)
    [projection] = all_projections(UTC)
    runner = ProjectionRunner(store, pool, [projection], batch=REBUILD_BATCH)
    started = time.perf_counter()
    await rebuild(runner, projection)
    while await runner.catch_up(projection):
        pass
    return total / (time.perf_counter() - started)


async def rebuild_figure(ctx: BenchContext, events: int) -> Figure:
    async with fresh_database(ctx, "bench_privacy_clear_log") as clear_db, \
            fresh_database(ctx, "bench_privacy_sealed_log") as sealed_db:
        clear_pool = await create_pool(clear_db.dsn, min_size=2, max_size=4)
        sealed_pool = await create_pool(sealed_db.dsn, min_size=2, max_size=4)
        clear_store, sealed_store = EventStore(clear_pool), EventStore(sealed_pool)
        try:
            total = await write_mixed_log(clear_store, CaseEventMapper(), events)
            assert await sealed_copy(clear_store, sealed_store, CustomerKeys(sealed_pool, MASTER)) == total
            for pool in (clear_pool, sealed_pool):
                await pool.execute("VACUUM ANALYZE case_events")
            clear_rates, sealed_rates = [], []
            for n in range(REBUILD_ROUNDS):
                for kind in (("sealed", "clear") if n % 2 == 0 else ("clear", "sealed")):
                    if kind == "sealed":
                        sealed_rates.append(await rebuild_rate(sealed_pool, total))
                    else:
                        clear_rates.append(await rebuild_rate(clear_pool, total))
        finally:
            await clear_store.close()
            await sealed_store.close()
            await clear_pool.close()
            await sealed_pool.close()

    def median(values: list[float]) -> float:
        return sorted(values)[(len(values) - 1) // 2]

    return Figure.versus(f"rebuild all projections, {total:,} events, personal data sealed", median(sealed_rates),
                         "events/s", "the same log in the clear", median(clear_rates), at_least=AT_LEAST)


async def run(ctx: BenchContext) -> list[Figure]:
    seconds = ctx.duration(DEFAULT_SECONDS)
    events = SMOKE_REBUILD_EVENTS if seconds < ROUNDS else REBUILD_EVENTS
    return [await note_figure(ctx, seconds), await rebuild_figure(ctx, events)]
