"""A webhook receiver for the tests, run as a process of its own (like another system would).

It verifies every request with the `standardwebhooks` package, using the secret
in --secret-file (written by the test once casedesk has shown it), and appends
each request it accepts to --out as one JSON line: the `webhook-id` and the body.
While --fail-flag exists it answers 500 (a receiver down for a while); on the
path /gone it answers 410 (a receiver that wants no more), on /moved a redirect to /hook.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

ANSWER_DELAY = 0.02  # a receiver doing some work (default): a batch takes long enough to be cut by a kill


def create_receiver(secret_file: Path, out: Path, fail_flag: Path, delay: float = ANSWER_DELAY) -> web.Application:
    # Another system on the bench's machine: what it spends is not casedesk's, so it spends
    # little. The verifier is made again only when the secret file changes (a test writes it
    # once casedesk shows the secret), and the output stays open, line-buffered (a line is on
    # disk, in arrival order, once its request is answered).
    verifier: dict[tuple[int, int], Webhook] = {}
    kept = out.open("a", buffering=1)

    def verifying() -> Webhook | None:
        try:
            seen = secret_file.stat()
        except FileNotFoundError:
            return None
        key = (seen.st_mtime_ns, seen.st_size)
        if key not in verifier:
            verifier.clear()
            verifier[key] = Webhook(secret_file.read_text().strip())
        return verifier[key]

    def take(body: bytes, headers: dict[str, str]) -> web.Response:
        """Plain file work, synchronous on purpose: the order of the lines is the order of arrival."""
        if fail_flag.exists():
            return web.Response(status=500, text="down for a while")
        webhook = verifying()
        if webhook is None:
            return web.Response(status=503, text="no secret yet")
        try:
            webhook.verify(body, headers)
        except WebhookVerificationError as error:
            with out.with_suffix(".refused").open("a") as refused:
                refused.write(f"{headers.get('webhook-id')}: {error}\n")
            return web.Response(status=400, text=str(error))
        kept.write(json.dumps({"id": headers["webhook-id"], "body": body.decode()}) + "\n")
        return web.Response(status=204)

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(delay)
        return take(body, dict(request.headers))

    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=410)

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/hook")

    async def alive(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", receive)
    app.router.add_post("/gone", gone)
    app.router.add_post("/moved", moved)
    app.router.add_get("/alive", alive)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret-file", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fail-flag", type=Path, required=True)
    parser.add_argument("--delay", type=float, default=ANSWER_DELAY, help="seconds before each answer")
    args = parser.parse_args()
    web.run_app(create_receiver(args.secret_file, args.out, args.fail_flag, args.delay), host="127.0.0.1",
                port=args.port,
                print=None, access_log=None)


if __name__ == "__main__":
    main()
