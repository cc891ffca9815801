"""Handlers of the webhook admin routes (CONTRACT.md "Effects"): create, list, pause,
resume, delete, recent deliveries, replay. Admins only (the route table says so)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID, uuid4

import msgspec
from aiohttp import web

from casedesk.services.effects import webhook_subscriptions as subs
from casedesk.services.effects.webhook_payloads import ALL_TYPES, event_types
from casedesk.services.http.app_keys import POOL, SETTINGS
from casedesk.services.http.case_requests import Text
from casedesk.services.http.commands import idempotency_of, path_uuid
from casedesk.services.http.middleware import PRINCIPAL
from casedesk.services.http.problems import FieldError, not_found, validation_problem
from casedesk.services.http.query_numbers import BIGINT, whole_number
from casedesk.services.http.request_body import decode

# A case event's name, or "*" for all; the list is the domain's, read once at import.
EventType = Literal[(*sorted(event_types()), ALL_TYPES)]  # type: ignore[valid-type]
# What the sender will be able to open a connection to is checked at creation (check_receiver).
# Control characters and spaces spelled out, not `\s`: Python's \s also matches \x1c-\x1f and JavaScript's does
# not, so a client validating with the document's pattern would send what the server then refuses.
Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000,
                                  pattern=r"^https?://[^\x00-\x20\x7f/?#@]+([/?#][^\x00-\x20\x7f]*)?$")]


class CreateWebhook(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: Url
    event_types: Annotated[list[EventType], msgspec.Meta(min_length=1, max_length=100)]
    description: Text | None = None


class ReplayWebhook(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    from_position: Annotated[int, msgspec.Meta(ge=0, le=BIGINT)]


class CreatedWebhook(subs.WebhookSubscription, frozen=True, kw_only=True):
    """The subscription with its signing secret: the only answer that ever shows it."""

    secret: str


class WebhookList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[subs.WebhookSubscription]


class DeliveriesPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[subs.DeliveryAttempt]
    next_cursor: str | None


class ReplayAccepted(msgspec.Struct, frozen=True, kw_only=True):
    webhook_id: UUID
    from_position: int
    state: subs.WebhookState
    accepted_at: datetime


_encode = msgspec.json.Encoder().encode


def _json(body: msgspec.Struct, status: int = 200) -> web.Response:
    return web.Response(body=_encode(body), status=status, content_type="application/json")


def _checked_types(requested: list[str]) -> list[str]:
    return [ALL_TYPES] if ALL_TYPES in requested else list(dict.fromkeys(requested))


async def create_webhook(request: web.Request) -> web.Response:
    body = await decode(request, CreateWebhook)
    first = await idempotency_of(request)
    if isinstance(first, web.Response):  # this key created one: the same answer, secret included
        return await _created_before(request, first)
    try:
        await subs.check_receiver(body.url, allow_private=request.app[SETTINGS].webhook_allow_private)
    except subs.RefusedUrlError as refused:
        raise validation_problem([FieldError("url", str(refused))]) from None
    secret = subs.new_secret()
    sealed = subs.SecretSeal(request.app[SETTINGS].pii_key).seal(secret)
    key = (first.principal, first.key, first.request_hash) if first is not None else None
    try:
        created = await subs.create(request.app[POOL], uuid4(), body.url, _checked_types(body.event_types),
                                    body.description, sealed, request[PRINCIPAL].sub, key)
    except subs.KeyTakenError:
        again = await idempotency_of(request)
        if not isinstance(again, web.Response):
            raise
        return await _created_before(request, again)
    return _created(created, secret)


def _created(created: subs.WebhookSubscription, secret: str) -> web.Response:
    answer = CreatedWebhook(**{f: getattr(created, f) for f in created.__struct_fields__}, secret=secret)
    response = _json(answer, 201)
    response.headers["Location"] = f"/v1/webhooks/{created.webhook_id}"
    return response


async def _created_before(request: web.Request, first: web.Response) -> web.Response:
    assert isinstance(first.body, bytes)
    webhook_id = UUID(msgspec.json.decode(first.body)["webhook_id"])
    found = await subs.with_secret(request.app[POOL], webhook_id)
    if found is None:
        raise not_found(f"webhook {webhook_id} (created with this Idempotency-Key, deleted since)")
    created, sealed = found
    return _created(created, subs.SecretSeal(request.app[SETTINGS].pii_key).open(sealed))


async def list_webhooks(request: web.Request) -> web.Response:
    return _json(WebhookList(items=await subs.list_all(request.app[POOL])))


async def _set_state(request: web.Request, state: subs.WebhookState) -> web.Response:
    webhook_id = path_uuid(request, "webhook_id")
    changed = await subs.change_state(request.app[POOL], webhook_id, state)
    if changed is None:
        raise not_found(f"webhook {webhook_id}")
    return _json(changed)


async def pause_webhook(request: web.Request) -> web.Response:
    return await _set_state(request, "paused")


async def resume_webhook(request: web.Request) -> web.Response:
    return await _set_state(request, "active")


async def delete_webhook(request: web.Request) -> web.Response:
    webhook_id = path_uuid(request, "webhook_id")
    if not await subs.delete(request.app[POOL], webhook_id):
        raise not_found(f"webhook {webhook_id}")
    return web.Response(status=204)


def _page_limit(request: web.Request) -> int:
    limit = whole_number(request.query.get("limit", "50"), 1, 500)
    if limit is None:
        raise validation_problem([FieldError("limit", "must be a whole number from 1 to 500")])
    return limit


def _page_cursor(request: web.Request) -> int | None:
    token = request.query.get("cursor")
    if not token:
        return None
    try:
        before = int(base64.urlsafe_b64decode(token.encode()).decode())
    except ValueError:
        before = 0
    if not 0 < before < 2**62:
        raise validation_problem([FieldError("cursor", "is not a cursor this API gave out")])
    return before


async def list_deliveries(request: web.Request) -> web.Response:
    webhook_id, limit, before = path_uuid(request, "webhook_id"), _page_limit(request), _page_cursor(request)
    pool = request.app[POOL]
    if not await subs.exists(pool, webhook_id):
        raise not_found(f"webhook {webhook_id}")
    items, more = await subs.attempts_page(pool, webhook_id, limit, before)
    cursor = base64.urlsafe_b64encode(str(more).encode()).decode() if more is not None else None
    return _json(DeliveriesPage(items=items, next_cursor=cursor))


async def replay_webhook(request: web.Request) -> web.Response:
    webhook_id = path_uuid(request, "webhook_id")
    body = await decode(request, ReplayWebhook)
    replayed = await subs.replay(request.app[POOL], webhook_id, body.from_position)
    if replayed is None:
        raise not_found(f"webhook {webhook_id}")
    return _json(ReplayAccepted(webhook_id=webhook_id, from_position=body.from_position, state=replayed.state,
                                accepted_at=datetime.now().astimezone()), 202)
