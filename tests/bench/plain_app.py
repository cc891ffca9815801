"""The plain way to add a note over HTTP, for bench_http to compare casedesk against (SPEC §6).

`python -m tests.bench.plain_app --port P` with PLAIN_DSN (a PostgreSQL URL) and
PLAIN_TOKEN_SECRET in the environment. One route, `POST /v1/cases/{case_id}/notes`:
JSON decode, an HS256 bearer token check (role agent/supervisor/admin), then, in
a thread (`asyncio.to_thread`), the eventsourcing library's own
`PostgresApplicationRecorder`: read the case's current version
(`select_events(desc=True, limit=1)`) and `insert_events` one StoredEvent at the
next version (retried on a lost race, as casedesk does). It answers like casedesk
(201, case_id/version/position). No group commit, no cache, no projections.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import jwt
import msgspec
from aiohttp import web
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

from tests.bench import BenchContext

TOPIC = "casedesk.domain.events:HandoffNoteAdded"
AGENT_ROLES = frozenset({"agent", "supervisor", "admin"})
EVENTS_TABLE = "stored_events"
ATTEMPTS = 5
# Threads and connections: as many as bench_http's load has connections.
THREADS = int(os.environ.get("PLAIN_THREADS", "32"))
POOL_SIZE = int(os.environ.get("PLAIN_POOL_SIZE", "32"))

RECORDER = web.AppKey("recorder", PostgresApplicationRecorder)
SECRET = web.AppKey("secret", str)


def open_recorder(dsn: str, pool_size: int = POOL_SIZE) -> tuple[PostgresDatastore, PostgresApplicationRecorder]:
    datastore = PostgresDatastore(**BenchContext(dsn).libpq_params(), pool_size=pool_size)
    recorder = PostgresApplicationRecorder(datastore, events_table_name=EVENTS_TABLE)
    recorder.create_table()
    return datastore, recorder


def problem(status: int, detail: str) -> web.Response:
    return web.json_response({"status": status, "detail": detail}, status=status,
                             content_type="application/problem+json")


def append_note(recorder: PostgresApplicationRecorder, case_id: uuid.UUID, state: bytes) -> tuple[int, int] | None:
    """(version, notification id) of the note written at the case's next version; None: no case."""
    for attempt in range(ATTEMPTS):
        last = recorder.select_events(case_id, desc=True, limit=1)
        if not last:
            return None
        version = last[0].originator_version + 1
        try:
            ids = recorder.insert_events([StoredEvent(case_id, version, TOPIC, state)])
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
            continue
        return version, (ids or [0])[-1]
    raise AssertionError("unreachable")


async def add_note(request: web.Request) -> web.Response:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return problem(401, "a bearer token is required")
    try:
        claims = jwt.decode(header[7:].strip(), request.app[SECRET], algorithms=["HS256"],
                            options={"require": ["exp", "sub", "role"]})
    except jwt.PyJWTError as error:
        return problem(401, str(error))
    if claims.get("role") not in AGENT_ROLES:
        return problem(403, "role may not add notes")
    try:
        case_id = uuid.UUID(request.match_info["case_id"])
    except ValueError:
        return problem(404, "no such case")
    try:
        body = msgspec.json.decode(await request.read())
    except msgspec.DecodeError as error:
        return problem(400, str(error))
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip() or len(text) > 4000:
        return problem(422, "text: a non-empty string of at most 4000 characters")
    note_id = uuid.uuid4()
    state = msgspec.json.encode({
        "note_id": note_id, "text": text, "for_department": body.get("for_department"),
        "pinned": bool(body.get("pinned", False)), "actor": {"id": claims["sub"], "role": claims["role"]},
        "timestamp": dt.datetime.now(dt.UTC),
    })
    try:
        written = await asyncio.to_thread(append_note, request.app[RECORDER], case_id, state)
    except IntegrityError:
        return problem(409, "the case kept changing")
    if written is None:
        return problem(404, "no such case")
    version, position = written
    return web.json_response(
        {"case_id": str(case_id), "version": version, "position": position, "note_id": str(note_id)},
        status=201, headers={"ETag": f'"{version}"'},
    )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(dsn: str, secret: str) -> web.Application:
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/cases/{case_id}/notes", add_note)

    async def recorder(app: web.Application) -> object:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=THREADS))
        datastore, app[RECORDER] = await asyncio.to_thread(open_recorder, dsn)
        app[SECRET] = secret
        yield
        await asyncio.to_thread(datastore.close)

    app.cleanup_ctx.append(recorder)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.plain_app")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(create_app(os.environ["PLAIN_DSN"], os.environ["PLAIN_TOKEN_SECRET"]),
                host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
