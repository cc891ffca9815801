"""`casedesk processor-sim`: a card processor speaking CONTRACT.md's processor API.

The embedded default (serve starts it when CASEDESK_PROCESSOR_URL is unset)
and what the tests call. Another system, not a part of casedesk: it keeps card
states in tables of its own (`processor_sim_*`, created here, not by casedesk's
migrations) and shares nothing with casedesk but the PostgreSQL server.

- HTTP basic auth with CASEDESK_PROCESSOR_USER / CASEDESK_PROCESSOR_PASSWORD;
- idempotent by `token`: the first answer to a token (a refusal too) is stored
  in the same transaction as its effect, and every repeat gets it back and
  changes nothing (`received` counts the repeats);
- reads for tests: `GET /cards/{card_token}`, `GET /calls`;
- faults on request (`POST /faults`, in memory, gone with the process):
  `delay_ms` (apply, then wait before answering), `fail_next` calls answered
  `fail_status` (503; `retry_after` adds that header) without applying, `drop_next` calls applied and then the
  connection dropped without an answer, `reject_next` calls refused for good.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
import msgspec
from aiohttp import web

from casedesk.domain.processor_instructions import TOKEN_MAX, CardTransition, NewCard, SpendControl

SCHEMA = """
CREATE TABLE IF NOT EXISTS processor_sim_calls (
    token text PRIMARY KEY, path text NOT NULL, body jsonb NOT NULL, status smallint NOT NULL,
    answer jsonb NOT NULL, received integer NOT NULL DEFAULT 1, at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS processor_sim_cards (
    card_token text PRIMARY KEY, state text NOT NULL, replaces text, updated_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS processor_sim_spend_controls (
    token text PRIMARY KEY, card_token text NOT NULL, scope text NOT NULL, merchant text);
"""
SCHEMA_LOCK = 7_141_002


class Faults(msgspec.Struct, kw_only=True):
    """What the simulator does wrong, on request (POST /faults replaces them all)."""

    delay_ms: int = 0
    fail_next: int = 0
    fail_status: int = 503
    retry_after: int | None = None  # seconds, sent with the fail_status answers
    drop_next: int = 0
    reject_next: int = 0
    reject_status: int = 422
    reject_code: str = "refused_on_request"
    reject_reason: str = "the simulator was asked to refuse this call"


POOL = web.AppKey("processor_sim_pool", asyncpg.Pool)
FAULTS = web.AppKey("processor_sim_faults", Faults)
CREDENTIALS = web.AppKey("processor_sim_credentials", tuple)
_BODIES: dict[str, type[CardTransition] | type[NewCard] | type[SpendControl]] = {
    "/cardtransitions": CardTransition, "/cards": NewCard, "/spendcontrols": SpendControl}
_encode = msgspec.json.Encoder().encode


class Refusal(Exception):
    """A call the processor will not apply: status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def answer(self) -> dict[str, Any]:
        return {"error_code": self.code, "error_message": self.message}


@web.middleware
async def basic_auth(request: web.Request, handler: Any) -> web.StreamResponse:
    user, password = request.app[CREDENTIALS]
    given = request.headers.get("Authorization", "")
    try:
        sent = base64.b64decode(given.removeprefix("Basic "), validate=True).decode()
        sent_user, _, sent_password = sent.partition(":")
    except (binascii.Error, UnicodeDecodeError):
        sent_user, sent_password = "", ""
    if not (given.startswith("Basic ") and hmac.compare_digest(sent_user, user)
            and hmac.compare_digest(sent_password, password)):
        return web.json_response({"error_code": "unauthorized", "error_message": "bad credentials"}, status=401,
                                 headers={"WWW-Authenticate": 'Basic realm="processor"'})
    return await handler(request)


async def _call(request: web.Request) -> web.StreamResponse:
    path, faults = request.path, request.app[FAULTS]
    try:
        body = msgspec.json.decode(await request.read(), type=_BODIES[path])
        if not body.token or len(body.token) > TOKEN_MAX:
            raise Refusal(400, "invalid_token", f"token must be 1 to {TOKEN_MAX} characters")
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        return web.json_response({"error_code": "invalid_request", "error_message": str(error)}, status=400)
    except Refusal as refusal:
        return web.json_response(refusal.answer(), status=refusal.status)
    if faults.fail_next > 0:
        faults.fail_next -= 1
        headers = {"Retry-After": str(faults.retry_after)} if faults.retry_after is not None else None
        return web.json_response({"error_code": "unavailable", "error_message": "fault on request"},
                                 status=faults.fail_status, headers=headers)
    status, answer = await _apply_once(request.app[POOL], path, body, faults)
    if faults.delay_ms:
        await asyncio.sleep(faults.delay_ms / 1000)
    if faults.drop_next > 0:
        faults.drop_next -= 1
        assert request.transport is not None
        request.transport.close()  # applied, and the caller never hears of it
        return web.Response(status=500)
    return web.json_response(answer, status=status)


async def _apply_once(pool: asyncpg.Pool, path: str, body: CardTransition | NewCard | SpendControl,
                      faults: Faults) -> tuple[int, dict[str, Any]]:
    """The stored answer for a known token; else apply the call and store its answer, together."""
    async with pool.acquire() as conn, conn.transaction():
        known = await conn.fetchrow(
            "UPDATE processor_sim_calls SET received = received + 1 WHERE token = $1 RETURNING status, answer",
            body.token)
        if known is not None:
            return known["status"], msgspec.json.decode(known["answer"])
        try:
            if faults.reject_next > 0:
                faults.reject_next -= 1
                raise Refusal(faults.reject_status, faults.reject_code, faults.reject_reason)
            status, answer = 201, await _apply(conn, body)
        except Refusal as refusal:
            status, answer = refusal.status, refusal.answer()
        await conn.execute(
            "INSERT INTO processor_sim_calls (token, path, body, status, answer) VALUES ($1, $2, $3, $4, $5)",
            body.token, path, _encode(body).decode(), status, _encode(answer).decode())
        return status, answer


async def _apply(conn: asyncpg.Connection, body: CardTransition | NewCard | SpendControl) -> dict[str, Any]:
    now = datetime.now(UTC)
    created = now.isoformat()
    if isinstance(body, CardTransition):
        state = await conn.fetchval("SELECT state FROM processor_sim_cards WHERE card_token = $1", body.card_token)
        if state == "TERMINATED":
            raise Refusal(400, "card_terminated", "a terminated card takes no transition")
        await _set_card(conn, body.card_token, body.state, now)
        return {"token": body.token, "card_token": body.card_token, "state": body.state, "created_time": created}
    if isinstance(body, NewCard):
        await _set_card(conn, body.new_card_token, "ACTIVE", now, replaces=body.replaces_card_token)
        return {"token": body.token, "card_token": body.new_card_token, "created_time": created}
    await conn.execute("INSERT INTO processor_sim_cards (card_token, state, updated_at) VALUES ($1, 'ACTIVE', $2)"
                       " ON CONFLICT (card_token) DO NOTHING", body.card_token, now)
    await conn.execute("INSERT INTO processor_sim_spend_controls VALUES ($1, $2, $3, $4)",
                       body.token, body.card_token, body.scope, body.merchant)
    return {"token": body.token, "card_token": body.card_token, "created_time": created}


async def _set_card(conn: asyncpg.Connection, card: str, state: str, at: datetime, replaces: str | None = None) -> None:
    # Cards casedesk knows are issued here already; one first named is taken as it comes.
    await conn.execute(
        "INSERT INTO processor_sim_cards (card_token, state, replaces, updated_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (card_token) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        card, state, replaces, at)


async def get_card(request: web.Request) -> web.Response:
    token = request.match_info["card_token"]
    pool = request.app[POOL]
    card = await pool.fetchrow("SELECT card_token, state, replaces FROM processor_sim_cards WHERE card_token = $1",
                               token)
    if card is None:
        return web.json_response({"error_code": "not_found", "error_message": "no such card"}, status=404)
    controls = await pool.fetch("SELECT token, scope, merchant FROM processor_sim_spend_controls"
                                " WHERE card_token = $1 ORDER BY token", token)
    return web.json_response({**dict(card), "spend_controls": [dict(c) for c in controls]})


async def get_calls(request: web.Request) -> web.Response:
    rows = await request.app[POOL].fetch(
        "SELECT token, path, body::text, status, answer::text, received, at FROM processor_sim_calls"
        " ORDER BY at, token")
    return web.json_response({"items": [
        {"token": r["token"], "path": r["path"], "body": msgspec.json.decode(r["body"]), "status": r["status"],
         "answer": msgspec.json.decode(r["answer"]), "received": r["received"], "at": r["at"].isoformat()}
        for r in rows]})


async def put_faults(request: web.Request) -> web.Response:
    try:
        request.app[FAULTS] = msgspec.json.decode(await request.read() or b"{}", type=Faults)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        return web.json_response({"error_code": "invalid_request", "error_message": str(error)}, status=400)
    return web.json_response(msgspec.to_builtins(request.app[FAULTS]))


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(msgspec.to_builtins(request.app[FAULTS]))


def create_sim_app(dsn: str, user: str, password: str) -> web.Application:
    """The simulator's app on PostgreSQL `dsn`, accepting `user`/`password`."""
    app = web.Application(middlewares=[basic_auth], client_max_size=64 * 1024)
    app[CREDENTIALS] = (user, password)
    app[FAULTS] = Faults()

    async def database(app: web.Application) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8)
        assert pool is not None
        async with pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", SCHEMA_LOCK)
            try:
                await conn.execute(SCHEMA)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", SCHEMA_LOCK)
        app[POOL] = pool
        yield
        await pool.close()

    app.cleanup_ctx.append(database)
    method: Literal["POST"] = "POST"
    app.router.add_route(method, "/cardtransitions", _call)
    app.router.add_route(method, "/cards", _call)
    app.router.add_route(method, "/spendcontrols", _call)
    app.router.add_get("/cards/{card_token}", get_card)
    app.router.add_get("/calls", get_calls)
    app.router.add_post("/faults", put_faults)
    app.router.add_get("/faults", get_faults)
    return app
