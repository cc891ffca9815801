"""Values the fraud case is made of: who acted, money, phones, customer, cards.

All are frozen msgspec Structs, so they travel inside events and snapshots as
they are. Like every domain Struct they are `gc=False`: immutable values never
form reference cycles, so the cyclic collector need not walk the thousands of
cases a process keeps in memory. Personal data arrives masked (and as opaque keys for comparison):
the domain never needs the clear value to apply its rules.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

import msgspec

CaseReason = Literal["unrecognized_charge", "fraud_alert", "data_breach", "lost_or_stolen"]
CaseStatus = Literal["open", "resolved"]
ContactDirection = Literal["inbound", "outbound", "callback"]
ContactChannel = Literal["phone", "chat", "branch", "email"]
# How a customer checked that a call came from us, and what became of the reference they gave.
VerificationChannel = Literal["ivr", "app"]
CodeCheck = Literal["matched", "wrong", "not_given", "locked"]
# A case also opens without any contact: from a breached merchant's list of cards.
OpeningChannel = Literal["phone", "chat", "branch", "email", "breach_notice"]
ContactOutcome = Literal["connected", "no_answer", "voicemail", "dropped"]
IdentityMethod = Literal[
    "knowledge_based",
    "callback_to_registered_number",
    "id_document_at_branch",
    "one_time_passcode",
]
TransactionAnswer = Literal["recognized", "unrecognized", "unsure"]
DisputeOutcome = Literal["upheld", "rejected", "withdrawn"]
# The card network's dispute lifecycle: won, lost and withdrawn end it.
DisputeStage = Literal["filed", "representment", "pre_arbitration", "arbitration", "won", "lost", "withdrawn"]
StopScope = Literal["merchant", "all_overseas", "all"]
Delivery = Literal["mail", "branch_pickup"]
FeeBearer = Literal["issuer", "customer", "merchant"]
CompromiseSource = Literal["merchant_site", "data_breach", "skimming", "unknown"]
DataExposed = Literal[
    "card_number", "security_code", "expiry_date", "cardholder_name", "phone", "address", "email", "password"
]
CardKind = Literal["primary", "family"]
CardProduct = Literal["credit", "debit"]
NoticeChannel = Literal["letter", "email", "call"]
NoticeSubject = Literal["investigation_result", "provisional_credit", "other"]
CardStatus = Literal["active", "suspended", "replaced", "destroyed"]
CallbackStatus = Literal["scheduled", "completed", "missed", "waived"]
# A liability waiver is pending (while the dispute runs) or final (the customer will never owe it).
WaiverFinality = Literal["pending", "final"]
# Four eyes: what an approval is for, and where it stands.
ApprovalKind = Literal["liability_waiver", "provisional_credit"]
ApprovalStatus = Literal["pending", "approved", "rejected", "expired"]
# What casedesk asks of the card processor (domain/processor_instructions.py).
InstructionKind = Literal["suspend_card", "issue_replacement", "terminate_card", "stop_payments"]

_AMOUNT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")
# The same rules as schema patterns, so the OpenAPI document states them to clients.
Amount = Annotated[str, msgspec.Meta(pattern=f"^{_AMOUNT.pattern}$")]
Currency = Annotated[str, msgspec.Meta(pattern=f"^{_CURRENCY.pattern}$")]
_LAST4 = re.compile(r"[0-9]{4}")


def is_last4(value: str) -> bool:
    """Four ASCII digits, as card last-4s are written."""
    return _LAST4.fullmatch(value) is not None


class Actor(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Who did something: agent id and name, role, acting department ("" if none)."""

    id: str
    name: str
    role: str
    department: str


class Money(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An amount in the currency's major unit, kept as a decimal string (no float drift)."""

    amount: Amount
    currency: Currency

    def __post_init__(self) -> None:
        if not _AMOUNT.fullmatch(self.amount):
            raise ValueError(f"amount must be a decimal string, not {self.amount!r}")
        if not _CURRENCY.fullmatch(self.currency):
            raise ValueError(f"currency must be three capital letters, not {self.currency!r}")

    def decimal(self) -> Decimal:
        return Decimal(self.amount)


class PhoneNumber(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """A phone as the domain sees it: masked for people, a digest key for comparison.

    `number` is kept only where the issuer must dial it later (a daytime
    follow-up phone); elsewhere it stays None. `former_keys` are the digests
    the same number had before phones were read as E.164: compared with, never
    stored (`kept()` drops them before the number goes into an event).
    """

    masked: str
    key: str
    number: str | None = None
    former_keys: tuple[str, ...] = ()

    def is_same_number(self, other: PhoneNumber) -> bool:
        return other.key == self.key or other.key in self.former_keys or self.key in other.former_keys

    def kept(self) -> PhoneNumber:
        return msgspec.structs.replace(self, former_keys=()) if self.former_keys else self


class Customer(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The cardholder as the case records them: masked name and registered phone."""

    customer_id: str
    name_masked: str
    name_key: str
    phone: PhoneNumber


class Card(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A card on the case; a family card points at its primary card."""

    card_id: str
    last4: str
    network: str
    kind: CardKind
    primary_card_id: str | None = None
    product: CardProduct = "credit"

    def __post_init__(self) -> None:
        if not is_last4(self.last4):
            raise ValueError(f"last4 must be four digits, not {self.last4!r}")


class ReviewedTransaction(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One transaction walked through with the customer, and their answer."""

    transaction_id: str
    merchant: str
    amount: Money
    occurred_at: datetime
    answer: TransactionAnswer


class Fee(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A reissue fee and who bears it; a breached merchant is named when it pays."""

    amount: Money
    bearer: FeeBearer
    merchant: str | None = None


class FeeAsked(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A reissue fee as an agent asks it: nobody named as bearer leaves that to the case."""

    amount: Money
    bearer: FeeBearer | None = None
    merchant: str | None = None


class ContactStart(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The contact to start together with a new case (`open_case(contact=...)`)."""

    contact_id: UUID
    direction: ContactDirection
    channel: ContactChannel
    phone: PhoneNumber | None
    department: str
    purpose: str | None = None


class WaiverAsked(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="liability_waiver", tag_field="kind"):
    """A liability waiver as the agent asked for it (the command's fields), waiting for approval."""

    dispute_id: UUID | None
    note: str
    amount: Money | None
    finality: WaiverFinality


class CreditAsked(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="provisional_credit", tag_field="kind"):
    """A provisional credit as the agent asked for it (the command's fields), waiting for approval."""

    credit_id: UUID
    dispute_id: UUID
    amount: Money


AskedCommand = WaiverAsked | CreditAsked
