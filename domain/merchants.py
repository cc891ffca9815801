"""Merchant intelligence: a merchant descriptor flagged ahead of time as a fraud biller.

A flag is a supervisor's decision, so it is an event too, in a stream of its
own per merchant (the stream id is derived from the normalised descriptor).
Cases and disputes that name a flagged merchant are raised in priority by
the read side, which sees the flags in log order.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from .card_data import check_structured_field, redact_card_numbers
from .errors import RuleViolation
from .events import RecordedEvent
from .values import Actor

_MERCHANTS = uuid5(NAMESPACE_URL, "https://casedesk.dev/merchants")


def merchant_key(descriptor: str) -> str:
    """The descriptor as compared: NFKC, case-folded, single spaces ("WEBTEL  " == "webtel")."""
    return " ".join(unicodedata.normalize("NFKC", descriptor).casefold().split())


def merchant_stream(descriptor: str) -> UUID:
    return uuid5(_MERCHANTS, merchant_key(descriptor))


class MerchantFlagged(RecordedEvent, frozen=True, kw_only=True):
    """A merchant descriptor is known for fraud billing."""

    merchant: str
    reason: str


def flag_merchant(version: int, *, actor: Actor, at: datetime, merchant: str, reason: str) -> list[MerchantFlagged]:
    """Flag (or flag again, with a new reason) a merchant descriptor."""
    if not merchant_key(merchant):
        raise RuleViolation("merchant-needed", "name the merchant descriptor")
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    check_structured_field("merchant", merchant)
    return [MerchantFlagged(originator_id=merchant_stream(merchant), originator_version=version + 1,
                            timestamp=at, actor=actor, merchant=merchant.strip(),
                            reason=redact_card_numbers(reason))]
