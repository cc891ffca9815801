"""Decisions about the cards: suspend, replace, destroy, and where their data leaked."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from . import events as ev
from .card_data import redact_card_numbers as redact
from .case import FraudCase
from .errors import RuleViolation
from .guards import known_card, no_card_data, stamps, still_open, verified_contact
from .money_rules import check_amount
from .values import Actor, CompromiseSource, Delivery, Fee, FeeAsked, FeeBearer, Money, is_last4


def suspend_card(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    card_id: str,
    reason: str,
    include_linked: bool,
) -> list[ev.CaseEvent]:
    """Suspend a card, and with `include_linked` its primary/family cards too.

    Protective, so no identity check is needed. Linked cards that are no
    longer active are skipped; the named card itself must be active.
    """
    still_open(case)
    card = known_card(case, card_id)
    if card.state == "suspended":
        raise RuleViolation("card-already-suspended", f"card {card_id} is already suspended")
    if card.state != "active":
        raise RuleViolation("card-not-active", f"card {card_id} is {card.state}")
    linked = _linked_cards(case, card_id) if include_linked else []
    stamp, why = stamps(case, actor, at), redact(reason)
    return [
        ev.CardSuspended(**stamp.next(), card_id=cid, reason=why, linked=cid != card_id)
        for cid in [card_id, *linked]
    ]


def _linked_cards(case: FraudCase, card_id: str) -> list[str]:
    """Active cards sharing the named card's primary (primary <-> family, both ways)."""
    card = case.cards[card_id]
    primary = card_id if card.kind == "primary" else card.primary_card_id
    if primary is None:
        return []
    return [
        cid
        for cid, other in case.cards.items()
        if cid != card_id
        and other.state == "active"
        and (cid == primary or other.primary_card_id == primary)
    ]


def suspend_online_access(
    case: FraudCase, *, actor: Actor, at: datetime, reason: str
) -> list[ev.CaseEvent]:
    """Protective, so no identity check is needed."""
    still_open(case)
    if case.online_access_suspended:
        raise RuleViolation("online-access-already-suspended", "online access is suspended")
    return [ev.OnlineAccessSuspended(**stamps(case, actor, at).next(), reason=redact(reason))]


def reissue_card(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    contact_id: UUID,
    card_id: str,
    new_card_id: str,
    new_last4: str,
    delivery: Delivery,
    expedite: bool,
    fee: Fee | FeeAsked,
) -> list[ev.CaseEvent]:
    """Issue a replacement for a suspended card (a sensitive action).

    A fee as asked (FeeAsked) leaves who pays to the case unless the agent names
    someone: on a breach case, the breached merchant (see reissue_fee).
    """
    if isinstance(fee, FeeAsked):
        fee = reissue_fee(case, amount=fee.amount, bearer=fee.bearer, merchant=fee.merchant)
    still_open(case)
    verified_contact(case, contact_id)
    card = known_card(case, card_id)
    if card.state != "suspended":
        raise RuleViolation(
            "card-not-suspended", f"card {card_id} is {card.state}; only a suspended card"
        )
    no_card_data(new_card_id=new_card_id, fee_merchant=fee.merchant)
    if new_card_id in case.cards:
        raise RuleViolation("duplicate-card", f"card {new_card_id} is already on this case")
    if not is_last4(new_last4):
        raise RuleViolation("invalid-last4", "last4 is four digits")
    check_amount("fee.amount", fee.amount, positive=False)  # a fee of zero is the usual one
    if (fee.bearer == "merchant") != bool(fee.merchant):
        raise RuleViolation(
            "fee-merchant-mismatch", "a merchant is named exactly when a merchant pays the fee"
        )
    if case.breach_fee is not None and case.breach_fee.bearer != "customer" and fee.bearer == "customer":
        # The customer did nothing wrong; the breach record says who pays.
        raise RuleViolation(
            "breach-reissue-not-charged-to-customer",
            "this card was in a data breach; its reissue is borne by "
            + (case.breach_fee.merchant or case.breach_fee.bearer),
        )
    return [
        ev.ReplacementCardIssued(
            **stamps(case, actor, at, contact_id).next(),
            old_card_id=card_id,
            new_card_id=new_card_id,
            new_last4=new_last4,
            delivery=delivery,
            expedited=expedite,
            fee=fee,
        )
    ]


def reissue_fee(
    case: FraudCase, *, amount: Money, bearer: FeeBearer | None, merchant: str | None
) -> Fee:
    """The fee as asked, or, when nobody is named, as the case implies.

    A case opened for a merchant's data breach defaults to the breach's fee
    bearer (the merchant, by name); any other case defaults to the issuer.
    """
    if bearer is not None:
        if bearer == "merchant" and merchant is None and case.breach_fee is not None:
            merchant = case.breach_fee.merchant
        return Fee(amount=amount, bearer=bearer, merchant=merchant)
    if case.breach_fee is not None:
        return Fee(amount=amount, bearer=case.breach_fee.bearer, merchant=case.breach_fee.merchant)
    return Fee(amount=amount, bearer="issuer", merchant=merchant)


def record_card_destroyed(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    card_id: str,
    branch: str,
    certificate_id: str,
) -> list[ev.CaseEvent]:
    """A branch destroyed an old card; only a card already replaced is handed in."""
    still_open(case)
    card = known_card(case, card_id)
    if card.state == "destroyed":
        raise RuleViolation("card-already-destroyed", f"card {card_id} is already destroyed")
    if card.state != "replaced":
        raise RuleViolation("card-not-replaced", f"card {card_id} is {card.state}, not replaced")
    no_card_data(branch=branch, certificate_id=certificate_id)
    stamp = stamps(case, actor, at).next()
    return [
        ev.CardDestroyed(**stamp, card_id=card_id, branch=branch, certificate_id=certificate_id)
    ]


def record_compromise(
    case: FraudCase,
    *,
    actor: Actor,
    at: datetime,
    source: CompromiseSource,
    detail: str,
    domain: str | None = None,
    breach_id: UUID | None = None,
    reissue_fee_bearer: FeeBearer | None = None,
    fee_merchant: str | None = None,
) -> list[ev.CaseEvent]:
    """Record where the data leaked; a breach also says who pays for reissues."""
    still_open(case)
    no_card_data(domain=domain, fee_merchant=fee_merchant)
    if reissue_fee_bearer is not None and breach_id is None:
        raise RuleViolation("fee-bearer-needs-breach", "only a recorded breach decides who pays for reissues")
    if (reissue_fee_bearer == "merchant") != bool(fee_merchant):
        raise RuleViolation(
            "fee-merchant-mismatch", "a merchant is named exactly when a merchant pays the fee"
        )
    return [
        ev.CompromiseSuspected(
            **stamps(case, actor, at).next(),
            source=source,
            detail=redact(detail),
            domain=domain,
            breach_id=breach_id,
            reissue_fee_bearer=reissue_fee_bearer,
            fee_merchant=fee_merchant,
        )
    ]
