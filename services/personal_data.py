"""Personal data at the edge: phones and names become masked text plus a keyed digest.

The domain compares numbers and names by digest (HMAC-SHA256 under
CASEDESK_PII_KEY), so events never need the clear registered phone or name;
the digests let lookup find a customer by name + phone without storing either.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

from casedesk.domain.values import PhoneNumber

_NOT_DIGIT = re.compile(r"\D")


def phone_digits(raw: str) -> str:
    return _NOT_DIGIT.sub("", raw)


# The country a number written without one is in (national numbers start with its trunk 0).
HOME_COUNTRY_CODE = "81"


def e164(number: str, country_code: str = HOME_COUNTRY_CODE) -> str:
    """A kept number as it is dialled from anywhere: '+81355551234'.

    Numbers are kept as their digits ('+81 3 5555 1234' as 81355551234,
    '03 5555 1234' as 0355551234); a leading 00 is the international prefix,
    a single 0 the home country's trunk prefix, anything else already starts
    with its country code.
    """
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

    def __init__(self, key: str) -> None:
        self._key = key.encode()

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

    def phone(self, raw: str, *, keep_number: bool = False) -> PhoneNumber:
        digits = phone_digits(raw)
        return PhoneNumber(
            masked=mask_phone(raw),
            key=self.digest("phone", digits),
            number=digits if keep_number else None,
        )

    def phone_key(self, raw: str) -> str:
        return self.digest("phone", phone_digits(raw))

    def name_masked(self, name: str) -> str:
        return mask_name(name)

    def name_key(self, name: str) -> str:
        return self.digest("name", _normal_name(name))
