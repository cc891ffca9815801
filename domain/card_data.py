"""Card-data safety: full card numbers and security codes are never stored.

Free text is redacted before it becomes an event; structured fields that hold
card data are refused (the caller hears which field). A "card number" is a run
of 13-19 digits, optionally split by single spaces or dashes, that passes the
Luhn check, so phone numbers and amounts are left alone.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .errors import CardDataRefused

__all__ = [
    "CardDataRefused",
    "check_structured_field",
    "contains_card_data",
    "looks_like_pan",
    "looks_like_security_code",
    "luhn_valid",
    "redact_card_numbers",
]

MASKED_CODE = "•••"
# One separator between digits; the ideographic space and full-width dash are
# what Japanese input methods produce.
_SEPARATORS = re.escape(" \u00a0\u3000-\u2010\u2011\u2012\u2013\uff0d")
_RUN = re.compile(rf"\d(?:[{_SEPARATORS}]?\d)*")
_GROUP = re.compile(r"\d+")
_SECURITY_CODE = re.compile(
    r"(?P<label>(?<![a-z])(?:cvv2?|cvc2?|cvn2?|cav2|cid|csc|security[\s_-]*code"
    r"|card[\s_-]*verification(?:[\s_-]*(?:value|code|number))?)(?![a-z])"
    r"|セキュリティー?コード|セキュリティー?番号)"
    r"(?P<gap>[\s:=#：＝、は]*(?:(?:is|was|of|no\.?|number)\s*)?[\s:=#：＝]*)"
    r"(?P<code>(?<!\d)\d{3,4}(?!\d))",
    re.IGNORECASE,
)
_CODE_FIELD_TOKENS = {"cvv", "cvv2", "cvc", "cvc2", "csc", "cvn", "cid", "securitycode"}


def luhn_valid(digits: str) -> bool:
    """The Luhn check every card number passes (digits only)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _is_pan_digits(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def looks_like_pan(value: str) -> bool:
    """True when the whole value is a Luhn-valid 13-19 digit number (spaces/dashes allowed)."""
    value = value.strip()
    if not _RUN.fullmatch(value):
        return False
    return _is_pan_digits("".join(_GROUP.findall(value)))


def _card_spans(run: str) -> list[tuple[int, int, str]]:
    """Character spans of `run` to mask, each with the last four digits it keeps.

    Any whole-group stretch of the run may be a card number (the digits before
    it can be a phone number typed next to it), so every Luhn-valid stretch of
    13-19 digits is masked; overlapping stretches are masked as one.
    """
    groups = list(_GROUP.finditer(run))
    hits: list[tuple[int, int]] = []
    for first in range(len(groups)):
        digits = ""
        for last in range(first, len(groups)):
            digits += groups[last].group()
            if len(digits) > 19:
                break
            if _is_pan_digits(digits):
                hits.append((first, last))
    merged: list[list[int]] = []
    for first, last in sorted(hits):
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    spans = []
    for first, last in merged:
        digits = "".join(g.group() for g in groups[first : last + 1])
        spans.append((groups[first].start(), groups[last].end(), digits[-4:]))
    return spans


def _mask_run(match: re.Match[str]) -> str:
    run = match.group()
    if len(run) < 13:
        return run  # too short to hold 13 digits: most runs (dates, amounts, phones' parts)
    out, cursor = [], 0
    for start, end, last4 in _card_spans(run):
        out.append(run[cursor:start])
        out.append(f"[card ••••{last4}]")
        cursor = end
    out.append(run[cursor:])
    return "".join(out)


def _mask_code(match: re.Match[str]) -> str:
    return f"{match.group('label')}{match.group('gap')}{MASKED_CODE}"


def redact_card_numbers(text: str) -> str:
    """Mask card numbers (keeping the last four) and security codes named as such."""
    text = _RUN.sub(_mask_run, text)
    return _SECURITY_CODE.sub(_mask_code, text)


def contains_card_data(text: str) -> bool:
    """True when redaction would change the text (without building the redacted text)."""
    for match in _RUN.finditer(text):
        run = match.group()
        if len(run) >= 13 and _card_spans(run):
            return True
    return _SECURITY_CODE.search(text) is not None


@lru_cache(maxsize=512)
def _field_tokens(field_name: str) -> frozenset[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", field_name).lower()
    tokens = {t for t in re.split(r"[^a-z0-9]+", spaced) if t}
    joined = "".join(sorted(tokens, key=spaced.find))
    return frozenset(tokens | ({"securitycode"} if "securitycode" in joined else set()))


def looks_like_security_code(field_name: str, value: str) -> bool:
    """True for a 3-4 digit value in a field whose name says security code (cvv, cvc...)."""
    if not _CODE_FIELD_TOKENS & _field_tokens(field_name):
        return False
    return re.fullmatch(r"\s*\d{3,4}\s*", value) is not None


def check_structured_field(field: str, value: str | None) -> None:
    """Refuse (`CardDataRefused(field)`) a value holding a card number or security code."""
    if value is None:
        return
    if contains_card_data(value) or looks_like_security_code(field, value):
        raise CardDataRefused(field)
