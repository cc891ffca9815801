"""Merchant intelligence: flagged descriptors, and disputes per merchant across cases.

Folded inside the case_files projection (in log order), so whether a merchant
was flagged when a dispute naming it arrived is decided the same way live and
on rebuild. A case naming a flagged merchant is marked in its view and waits
at priority 1.
"""

from __future__ import annotations

from typing import Any

from casedesk.domain import events as ev
from casedesk.domain.merchants import MerchantFlagged, merchant_key
from casedesk.projections.timeline.shapes import CaseView


def merchants_named(event: Any) -> list[str]:
    """The merchant descriptors a case event names as a suspect."""
    if isinstance(event, ev.ChargeDisputed):
        return [event.merchant]
    if isinstance(event, ev.TransactionReviewed) and event.transaction.answer != "recognized":
        return [event.transaction.merchant]
    if isinstance(event, ev.PaymentStopped) and event.merchant:
        return [event.merchant]
    return []


class MerchantBook:
    """The flags one batch knows: loaded for the merchants it names, updated in order."""

    def __init__(self, flags: dict[str, str]) -> None:
        self.flags = flags
        self.new_flags: list[MerchantFlagged] = []
        self.disputes: list[ev.ChargeDisputed] = []

    @classmethod
    async def load(cls, conn: Any, events: list[Any]) -> MerchantBook:
        keys = sorted({merchant_key(m) for e in events for m in merchants_named(e)})
        if not keys:  # most batches name no merchant: no round trip for them
            return cls({})
        rows = await conn.fetch("SELECT merchant_key, merchant FROM merchant_flags WHERE merchant_key = ANY($1)", keys)
        return cls({r[0]: r[1] for r in rows})

    def flag(self, event: MerchantFlagged) -> None:
        self.flags[merchant_key(event.merchant)] = event.merchant
        self.new_flags.append(event)

    def mark(self, view: CaseView, event: Any) -> None:
        if isinstance(event, ev.ChargeDisputed):
            self.disputes.append(event)
        for merchant in merchants_named(event):
            known = self.flags.get(merchant_key(merchant))
            if known is not None and known not in view.flagged_merchants:
                view.flagged_merchants.append(known)

    async def write(self, conn: Any) -> None:
        if self.new_flags:
            await conn.executemany(
                "INSERT INTO merchant_flags (merchant_key, merchant, reason, flagged_at, flagged_by)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (merchant_key) DO UPDATE SET merchant = excluded.merchant,"
                " reason = excluded.reason, flagged_at = excluded.flagged_at, flagged_by = excluded.flagged_by",
                [(merchant_key(f.merchant), f.merchant, f.reason, f.timestamp, f.actor.name) for f in self.new_flags])
        if self.disputes:
            await conn.executemany(
                "INSERT INTO merchant_disputes (dispute_id, case_id, merchant_key, merchant, amount, currency, at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (dispute_id) DO NOTHING",
                [(d.dispute_id, d.originator_id, merchant_key(d.merchant), d.merchant, d.amount.amount,
                  d.amount.currency, d.timestamp) for d in self.disputes])


async def flagged_merchants(conn: Any) -> list[dict[str, Any]]:
    """Flagged descriptors with their dispute counts, most disputed first."""
    rows = await conn.fetch(
        "SELECT f.merchant, f.reason, f.flagged_at, f.flagged_by, count(d.dispute_id) AS disputes"
        " FROM merchant_flags f LEFT JOIN merchant_disputes d USING (merchant_key)"
        " GROUP BY f.merchant_key ORDER BY disputes DESC, f.merchant")
    return [dict(r) for r in rows]


async def most_disputed(conn: Any, limit: int = 20) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT min(merchant) AS merchant, count(*) AS disputes, count(DISTINCT case_id) AS cases"
        " FROM merchant_disputes GROUP BY merchant_key ORDER BY disputes DESC LIMIT $1", limit)
    return [dict(r) for r in rows]
