"""The stack's own limit for `POST note`: the same HTTP work with no database (issue 22).

`python -m tests.bench.limit_app --port P --answer-bytes N` with LIMIT_TOKEN_SECRET in
the environment. One route, `POST /v1/cases/{case_id}/notes`, built from casedesk's
own stack and nothing else: aiohttp on uvloop, PyJWT verification of the same HS256
token (the same required claims), msgspec decode of the same body and the same
checks of `text`, then an answer of the same status, headers and size (N bytes,
measured from casedesk's answer in the same run) encoded by msgspec. No database,
no log line, no middleware: whatever casedesk spends beyond this is its own.
"""

from __future__ import annotations

import argparse
import os
import uuid

import jwt
import msgspec
from aiohttp import web

AGENT_ROLES = frozenset({"agent", "supervisor", "admin"})
SECRET = web.AppKey("secret", str)
ANSWER_BYTES = web.AppKey("answer_bytes", int)


class NoteBody(msgspec.Struct, forbid_unknown_fields=False):
    """What casedesk's note route reads from the body."""

    text: str
    for_department: str | None = None
    pinned: bool = False


def problem(status: int, detail: str) -> web.Response:
    return web.Response(body=msgspec.json.encode({"status": status, "detail": detail}), status=status,
                        content_type="application/problem+json")


def answer_of_size(case_id: str, size: int) -> bytes:
    """casedesk's answer fields, padded with a filler field to `size` bytes."""
    fields = {"case_id": case_id, "version": 2, "position": 1, "note_id": str(uuid.uuid4()), "pad": ""}
    bare = len(msgspec.json.encode(fields))
    fields["pad"] = "x" * max(0, size - bare)
    return msgspec.json.encode(fields)


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
        case_id = str(uuid.UUID(request.match_info["case_id"]))
    except ValueError:
        return problem(404, "no such case")
    try:
        body = msgspec.json.decode(await request.read(), type=NoteBody)
    except msgspec.DecodeError as error:
        return problem(400, str(error))
    if not body.text.strip() or len(body.text) > 4000:
        return problem(422, "text: a non-empty string of at most 4000 characters")
    return web.Response(body=answer_of_size(case_id, request.app[ANSWER_BYTES]), status=201,
                        content_type="application/json", headers={"ETag": '"2"'})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(secret: str, answer_bytes: int) -> web.Application:
    app = web.Application()
    app[SECRET] = secret
    app[ANSWER_BYTES] = answer_bytes
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/cases/{case_id}/notes", add_note)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.limit_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--answer-bytes", type=int, required=True)
    args = parser.parse_args()
    import uvloop

    uvloop.install()
    web.run_app(create_app(os.environ["LIMIT_TOKEN_SECRET"], args.answer_bytes),
                host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
