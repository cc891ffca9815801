"""What every decision shares: the checks that refuse a command, and event stamps.

A decision asks these guards first, then builds its events with `Stamps`, so
that versions are consecutive and each event carries actor, time and contact.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict
from uuid import UUID

from .card_data import check_structured_field, looks_like_pan
from .case import FraudCase
from .case_parts import CardState, ContactState
from .errors import CardDataRefused, CaseMergedError, RuleViolation
from .values import Actor, PhoneNumber


class Stamp(TypedDict):
    """The fields every case event starts with."""

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    actor: Actor
    contact_id: UUID | None


class Stamps:
    """Hands out stamps with consecutive versions, one per event."""

    def __init__(
        self, case_id: UUID, version: int, actor: Actor, at: datetime, contact_id: UUID | None
    ) -> None:
        if at.tzinfo is None:
            raise ValueError("at must be timezone-aware")
        self._case_id, self._version = case_id, version
        self._actor, self._at, self._contact_id = actor, at, contact_id

    def next(self) -> Stamp:
        self._version += 1
        return Stamp(
            originator_id=self._case_id,
            originator_version=self._version,
            timestamp=self._at,
            actor=self._actor,
            contact_id=self._contact_id,
        )


def stamps(case: FraudCase, actor: Actor, at: datetime, contact_id: UUID | None = None) -> Stamps:
    """Stamps for a command on `case`: the contact it names, else the open one.

    A case merged into another takes no command (every decision stamps its
    events here); only casedesk itself (a processor's answer) still records on it.
    """
    if case.merged_into is not None and actor.role != "system":
        raise CaseMergedError(case.id, case.merged_into)
    contact = contact_id if contact_id is not None else case.open_contact_id
    return Stamps(case.id, case.version, actor, at, contact)


def still_open(case: FraudCase) -> None:
    """A resolved case takes only notes and reopening."""
    if case.status == "resolved":
        raise RuleViolation("case-resolved", f"case {case.id} is resolved; reopen it first")


def open_contact(case: FraudCase, contact_id: UUID) -> ContactState:
    contact = case.contact(contact_id)
    if contact is None:
        raise RuleViolation("unknown-contact", f"contact {contact_id} is not on this case")
    if contact.ended:
        raise RuleViolation("contact-not-open", f"contact {contact_id} has ended")
    return contact


def identity_unlocked(case: FraudCase) -> None:
    if case.identity_locked:
        raise RuleViolation(
            "identity-locked", "identity checks are locked until a supervisor unlocks"
        )


def verified_contact(case: FraudCase, contact_id: UUID) -> ContactState:
    """Sensitive actions: the customer passed an identity check in this open contact."""
    contact = open_contact(case, contact_id)
    identity_unlocked(case)
    if contact.verified_by is None:
        raise RuleViolation(
            "identity-not-verified", f"no passed identity check in contact {contact_id}"
        )
    return contact


def known_card(case: FraudCase, card_id: str) -> CardState:
    no_card_data(card_id=card_id)  # before the id is echoed in any refusal
    card = case.cards.get(card_id)
    if card is None:
        raise RuleViolation("unknown-card", f"card {card_id} is not on this case")
    return card


def no_card_data(**fields: str | None) -> None:
    """Refuse structured values holding a card number or security code."""
    for name, value in fields.items():
        check_structured_field(name, value)


def no_card_data_in_phone(field: str, phone: PhoneNumber | None) -> None:
    """A phone's full number must not be a card number typed in the wrong box.

    Numbers written in international form (+...) are phones, whatever Luhn says.
    """
    if phone is None or phone.number is None:
        return
    if not phone.number.lstrip().startswith("+") and looks_like_pan(phone.number):
        raise CardDataRefused(field)


def is_registered(case: FraudCase, phone: PhoneNumber | None) -> bool:
    return phone is not None and phone.is_same_number(case.customer.phone)
