"""Phone numbers in one form: E.164, whatever way the agent or the customer wrote them.

`+81 3-1234-5678`, `03-1234-5678` and `０３１２３４５６７８` are one number, so a
returning caller is found and a call is verified however each side typed it.
A number is read with the `phonenumbers` package in the deployment's region
(CASEDESK_PHONE_REGION, default JP) when it has no country code.
"""

from __future__ import annotations

import unicodedata

import phonenumbers

from casedesk.domain.card_data import looks_like_pan
from casedesk.domain.errors import CardDataRefused


class PhoneNumberRefused(ValueError):
    """A field meant to hold a phone number holds something that is not one (422 naming the field)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


def e164(raw: str, region: str, field: str = "phone") -> str:
    """The number in E.164 (`+81312345678`), or PhoneNumberRefused naming `field`."""
    written = unicodedata.normalize("NFKC", raw).strip()
    if not written.startswith("+") and looks_like_pan(written):
        raise CardDataRefused(field)  # a card number typed in the phone box is never kept, not even parsed
    try:
        number = phonenumbers.parse(written, region)
    except phonenumbers.NumberParseException as error:
        raise PhoneNumberRefused(field, f"not a phone number ({error})") from error
    if not phonenumbers.is_possible_number(number):
        raise PhoneNumberRefused(field, "not a phone number: wrong length for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def national_digits(number_e164: str) -> str:
    """The digits as the number is dialled at home (`0312345678` for `+81312345678`)."""
    number = phonenumbers.parse(number_e164)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return "".join(c for c in national if c.isdigit())
