"""The card networks' chargeback reason codes, kept as data, and the check a dispute passes.

A dispute is filed with one network under one of its reason codes; anything
else would be refused by the network days later, after the customer was
told it was filed. Lists as the networks publish them (Visa Claims
Resolution, Mastercard Chargeback Guide, JCB and American Express dispute
reason codes); a network's new code is one entry here.
"""

from __future__ import annotations

from types import MappingProxyType

from .errors import FieldRefused


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


REASON_CODES: MappingProxyType[str, frozenset[str]] = MappingProxyType({
    # Visa Claims Resolution: fraud 10.x, authorization 11.x, processing errors 12.x, consumer disputes 13.x.
    "visa": _codes(
        "10.1 10.2 10.3 10.4 10.5 11.1 11.2 11.3 12.1 12.2 12.3 12.4 12.5 12.6.1 12.6.2 12.7"
        " 13.1 13.2 13.3 13.4 13.5 13.6 13.7 13.8 13.9"),
    "mastercard": _codes(
        "4808 4812 4831 4834 4837 4840 4841 4842 4846 4849 4850 4853 4854 4855 4859 4860 4863 4870 4871"
        " 4999"),
    "jcb": _codes(
        "501 502 503 504 505 507 508 510 511 512 513 514 516 517 518 521 522 523 524 525 526 527 530 531"
        " 532 534 536 537 538 539 540 541 542 544 546 547 548 549 550 552 554 580 581"),
    "amex": _codes(
        "A01 A02 A08 C02 C04 C05 C08 C14 C18 C28 C31 C32 F10 F14 F24 F29 FR2 FR4 FR6 M01 M10 M49 P01 P03"
        " P04 P05 P07 P08 P22 P23 R03 R13"),
})


class UnknownReasonCode(FieldRefused):
    """A dispute names a network or reason code the networks do not have (422 naming the field)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__("invalid-reason-code", field, detail)


def check_reason_code(network: str, reason_code: str) -> None:
    """Refuse a network casedesk files no disputes with, or a code that network does not define."""
    codes = REASON_CODES.get(network.strip().lower())
    if codes is None:
        raise UnknownReasonCode("network", f"disputes are filed with {', '.join(REASON_CODES)}, not {network!r}")
    if reason_code.strip().upper() not in codes:
        raise UnknownReasonCode("reason_code", f"{reason_code!r} is not a {network.strip().lower()} reason code")
