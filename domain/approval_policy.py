"""Four eyes: above how much money a waiver or a credit waits for a second person.

A liability waiver or a provisional credit above the limit for its currency is
not granted by the agent who asks: it becomes an approval request that a
supervisor other than the requester approves, rejects, or lets expire after
APPROVAL_WINDOW. Limits are in the currency's major unit, per currency; the
defaults are here (beside the clock policies) and CASEDESK_APPROVAL_LIMIT
replaces them currency by currency, e.g. `JPY:100000,USD:1000`.

A currency with no limit at all (neither a default nor set) needs approval for
any amount: a control nobody configured must not let money out unchecked.
`approval_requested` is the event a decision above the limit records instead
of granting (domain/decisions_approvals.py decides it later).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from uuid import UUID, uuid5

import msgspec

from . import events as ev
from .currencies import MINOR_UNITS
from .guards import Stamps
from .values import Actor, AskedCommand, CreditAsked, Money

APPROVAL_WINDOW = timedelta(hours=72)
_PLAIN_AMOUNT = re.compile(r"[0-9]+(\.[0-9]+)?")
DEFAULT_LIMITS: Mapping[str, str] = {"JPY": "100000", "USD": "1000", "EUR": "1000", "GBP": "1000"}


class ApprovalLimits(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The approval limit of each currency (major units, as decimal strings)."""

    limits: dict[str, str]

    def limit_for(self, currency: str) -> Money:
        return Money(amount=self.limits.get(currency, "0"), currency=currency)

    def exceeded_by(self, amount: Money | None) -> Money | None:
        """The limit `amount` is above (it then needs approval); None when it is within (or unknown)."""
        if amount is None:
            return None
        limit = self.limit_for(amount.currency)
        return limit if amount.decimal() > limit.decimal() else None


DEFAULT_APPROVAL_LIMITS = ApprovalLimits(limits=dict(DEFAULT_LIMITS))


def approval_limits(setting: str | None) -> ApprovalLimits:
    """The defaults with the currencies `setting` names replaced ("JPY:100000,USD:1000").

    ValueError saying what is wrong with which part, for a setting casedesk cannot use.
    """
    limits = dict(DEFAULT_LIMITS)
    for part in (setting or "").split(","):
        if not part.strip():
            continue
        currency, colon, amount = (p.strip() for p in part.partition(":"))
        if not colon:
            raise ValueError(f"{part.strip()!r} is not CURRENCY:AMOUNT (e.g. JPY:100000,USD:1000)")
        units = MINOR_UNITS.get(currency)
        if units is None:
            raise ValueError(f"{currency!r} is not an ISO 4217 currency code")
        if not _PLAIN_AMOUNT.fullmatch(amount) or len(amount.partition(".")[2]) > units:
            decimals = f"at most {units} decimals" if units else "no decimals"
            raise ValueError(f"{amount!r} for {currency} is not an amount in its major unit (digits, {decimals})")
        limits[currency] = amount
    return ApprovalLimits(limits=limits)


def approval_id_for(case_id: UUID, version: int) -> UUID:
    """The id of the approval asked for at `version` of a case (one request per event: unique, and pure)."""
    return uuid5(case_id, f"approval:{version}")


def approval_requested(stamps: Stamps, case_id: UUID, *, command: AskedCommand, amount: Money,
                       limit: Money, actor: Actor, at: datetime) -> ev.ApprovalRequested:
    """The request that takes the place of a command above the limit."""
    stamp = stamps.next()
    return ev.ApprovalRequested(
        **stamp, approval_id=approval_id_for(case_id, stamp["originator_version"]),
        kind="provisional_credit" if isinstance(command, CreditAsked) else "liability_waiver",
        command=command, amount=amount, limit=limit, requested_by=actor, expires_at=at + APPROVAL_WINDOW)
