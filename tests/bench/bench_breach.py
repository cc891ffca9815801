"""Breach intake: a 110,000-card list through `POST /v1/breaches/{id}/affected-cards` (issue 7).

A `casedesk serve` process (projections off, as in the several-process layout
where `casedesk project` works apart) on a fresh database takes the NDJSON list,
streamed by an aiohttp client, and opens one outreach case (two events) per card.
Measured: cards/s over the whole upload, and the seconds the whole list takes
(target: under 30 s). Then the same list again: all `already_known`.

Reference, same run, same database: the raw asyncpg rate of writing the same
rows (two per card: the same encoded events) into a scratch table of
`case_events`' shape, 4,000 rows per `INSERT ... SELECT unnest(...)`: what the
database itself can take of this work, without any per-line checking.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import aiohttp

from casedesk.domain.breaches import open_breach_outreach, record_breach
from casedesk.domain.values import Actor, Card, Customer, PhoneNumber
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.tokens import issue_token
from tests.bench import BenchContext, Figure
from tests.bench.support import (
    TOKEN_SECRET,
    Server,
    absolute,
    casedesk_command,
    casedesk_env,
    free_port,
    fresh_database,
)

CARDS = 110_000


def affected_cards(count: int) -> bytes:
    return b"".join(json.dumps({
        "customer_id": f"cust-{n}", "name": f"Customer {n}", "registered_phone": f"+81 90 {n:08d}",
        "card_id": f"card-{n}", "last4": f"{n % 10_000:04d}", "network": "jcb"}).encode() + b"\n"
        for n in range(1, count + 1))


async def raw_rows_per_second(ctx: BenchContext, count: int) -> float:
    """Rows/s of plain batched inserts of the same events (the database's own limit here)."""
    actor = Actor(id="sup", name="S", role="supervisor", department="fraud")
    [breach] = record_breach(breach_id=uuid.uuid4(), actor=actor, at=datetime.now(UTC), merchant="ShopNet",
                             window_start=datetime(2024, 1, 1, tzinfo=UTC), window_end=datetime(2024, 3, 1, tzinfo=UTC),
                             data_exposed=("card_number",), reissue_fee_bearer="merchant")
    mapper = CaseEventMapper()
    rows = []
    for n in range(count):
        customer = Customer(customer_id=f"c{n}", name_masked="C•••", name_key="k",
                            phone=PhoneNumber(masked="•••• 0000", key="p"))
        card = Card(card_id=f"card-{n}", last4="0000", network="jcb", kind="primary")
        rows += [mapper.to_stored_event(e) for e in open_breach_outreach(breach, actor=actor, at=breach.timestamp,
                                                                         customer=customer, card=card)]
    conn = await ctx.connect()
    try:
        await conn.execute("CREATE TABLE raw_events (LIKE case_events INCLUDING ALL)")
        started = time.perf_counter()
        for i in range(0, len(rows), 4000):
            part = rows[i:i + 4000]
            await conn.execute(
                "INSERT INTO raw_events (originator_id, originator_version, topic, state)"
                " SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::bytea[])",
                [r.originator_id for r in part], [r.originator_version for r in part],
                [r.topic for r in part], [r.state for r in part])
        return len(rows) / (time.perf_counter() - started)
    finally:
        await conn.execute("DROP TABLE IF EXISTS raw_events")
        await conn.close()


async def run(ctx: BenchContext) -> list[Figure]:
    body = affected_cards(CARDS)
    token = issue_token(TOKEN_SECRET, sub="bench-sup", name="Bench", role="supervisor", departments=["fraud"],
                        ttl=3600)
    headers = {"Authorization": f"Bearer {token}"}
    async with fresh_database(ctx, "breach") as db:
        port = free_port()
        env = {**casedesk_env(db.dsn), "CASEDESK_PROJECTIONS": "false"}
        async with Server("breach", casedesk_command(port), env, port) as server, aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=600)) as session:
            async with session.post(f"{server.url}/v1/breaches", headers=headers, json={
                    "merchant": "ShopNet", "window_start": "2024-01-01T00:00:00Z",
                    "window_end": "2024-03-31T00:00:00Z", "data_exposed": ["card_number", "security_code"],
                    "reissue_fee_bearer": "merchant"}) as r:
                breach_id = (await r.json())["breach_id"]
            url = f"{server.url}/v1/breaches/{breach_id}/affected-cards"
            upload_headers = {**headers, "Content-Type": "application/x-ndjson"}
            started = time.perf_counter()
            async with session.post(url, data=body, headers=upload_headers) as r:
                first = await r.json()
            first_s = time.perf_counter() - started
            started = time.perf_counter()
            async with session.post(url, data=body, headers=upload_headers) as r:
                again = await r.json()
            again_s = time.perf_counter() - started
        if first.get("cases_opened") != CARDS or again.get("already_known") != CARDS:
            raise RuntimeError(f"breach intake miscounted: {first} / {again}")
        raw = await raw_rows_per_second(db, CARDS)
    reference = f"raw batched INSERT of the same 2 rows/card ({raw / 2:,.0f} cards/s)"
    return [
        Figure.versus("breach intake, 110k cards over HTTP", CARDS / first_s, "cards/s", reference, raw / 2),
        absolute("breach intake, whole 110k list", first_s, "s", reference, CARDS / (raw / 2), below=30),
        Figure.versus("breach re-upload, all already known", CARDS / again_s, "cards/s", reference, raw / 2),
    ]
