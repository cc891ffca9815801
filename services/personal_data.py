"""Personal data at the edge: phones and names become masked text plus a keyed digest.

The domain compares numbers and names by digest (HMAC-SHA256 under
CASEDESK_PII_KEY), so events never need the clear registered phone or name;
the digests let lookup find a customer by name + phone without storing either.

A phone's digest is taken of its E.164 form (services/phone_numbers.py).
Digests written before that were taken of the digits as typed; they cannot be
recomputed (the numbers were never stored), so lookups also try the digests
the old rule gives for the usual ways of writing the number (`legacy_phone_keys`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

from casedesk.domain.values import PhoneNumber
from casedesk.services.phone_numbers import e164, national_digits

_NOT_DIGIT = re.compile(r"\D")


def phone_digits(raw: str) -> str:
    return _NOT_DIGIT.sub("", raw)


# The country a number written without one is in (national numbers start with its trunk 0).
HOME_COUNTRY_CODE = "81"


def dialable(number: str, country_code: str = HOME_COUNTRY_CODE) -> str:
    """A kept number as it is dialled from anywhere: '+81355551234'.

    Numbers are kept in E.164 now (returned as they are); events written before
    that kept their digits ('+81 3 5555 1234' as 81355551234,
    '03 5555 1234' as 0355551234); a leading 00 is the international prefix,
    a single 0 the home country's trunk prefix, anything else already starts
    with its country code.
    """
    if number.startswith("+"):
        return number
    digits = phone_digits(number)
    if digits.startswith("00"):
        return "+" + digits[2:]
    if digits.startswith("0"):
        return "+" + country_code + digits[1:]
    return "+" + digits


def mask_phone(raw: str) -> str:
    return "•••• " + phone_digits(raw)[-4:]


def mask_name(name: str) -> str:
    """Keep each part's first letter: 'Taro Yamada' -> 'T••• Y•••••'."""
    return " ".join(part[0] + "•" * (len(part) - 1) for part in name.split())


def _normal_name(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


class PersonalData:
    """Masks and digests personal data with the deployment's key."""

    def __init__(self, key: str, region: str = "JP") -> None:
        self._key = key.encode()
        self.region = region

    def digest(self, kind: str, value: str) -> str:
        return hmac.digest(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hex()[:32]

    def idempotency_key(self, key: str) -> str:
        """How an Idempotency-Key is stored: a keyed digest, never the key a client chose.

        A client may put anything in the header, a card number included, and a
        plain SHA-256 of a 16-digit number is found by brute force: PCI DSS 3.4
        asks for a keyed hash. The PII key is kept out of the database, like
        the token secret; rotating it only forgets the last 24 hours' keys.
        """
        return self.digest("idempotency-key", key)

    def request_digest(self, request: bytes) -> bytes:
        """A keyed digest of what a request carried (its body may hold a card number)."""
        return hmac.digest(self._key, b"request:" + request, hashlib.sha256)

    def e164(self, raw: str, field: str = "phone") -> str:
        """The number in E.164; PhoneNumberRefused naming `field` when it is not a phone number."""
        return e164(raw, self.region, field)

    def phone(self, raw: str, *, field: str = "phone", keep_number: bool = False,
              compared: bool = False) -> PhoneNumber:
        """`compared`: a number the case compares with the registered phone (a call's, a callback's),
        which carries the old rule's digests too, so a case opened before E.164 still knows it."""
        number = self.e164(raw, field)
        return PhoneNumber(
            masked=mask_phone(number),
            key=self.digest("phone", number),
            number=number if keep_number else None,
            former_keys=tuple(self.legacy_phone_keys(number, raw)) if compared else (),
        )

    def phone_keys(self, raw: str, field: str = "phone") -> list[str]:
        """Every digest a stored row for this number can carry: today's first, then the old rule's."""
        number = self.e164(raw, field)
        return [self.digest("phone", number), *self.legacy_phone_keys(number, raw)]

    def legacy_phone_keys(self, number: str, raw: str) -> list[str]:
        """Digests of the digits as typed (before E.164): international, national, and as given now.

        Dropped once no open case nor outbound attempt still carries one (README, "Phone numbers").
        """
        forms = dict.fromkeys([number.lstrip("+"), national_digits(number), phone_digits(raw)])
        return [self.digest("phone", digits) for digits in forms if digits]

    def name_masked(self, name: str) -> str:
        return mask_name(name)

    def name_key(self, name: str) -> str:
        return self.digest("name", _normal_name(name))
