"""Card-data safety: full card numbers and security codes are never stored.

Free text is redacted before it becomes an event; structured fields that hold
card data are refused (the caller hears which field). Text is first read as
digits (`written_digits`: NFKC, format characters dropped), so fullwidth
digits and zero-width characters change nothing. A card number is then any
stretch of 13-19 digits, in groups joined by up to four non-letters (spaces,
dots, slashes, commas, dashes, parentheses...), that passes the Luhn check;
a currency sign ends a stretch, so amounts next to each other stay amounts,
and so do a date (with its time) and a UUID.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from functools import lru_cache, partial
from itertools import accumulate

from .errors import CardDataRefused
from .written_digits import ReadText, read_as_digits

__all__ = [
    "PHONE_FIELDS",
    "CardDataRefused",
    "check_structured_field",
    "contains_card_data",
    "holds_card_data",
    "looks_like_pan",
    "looks_like_security_code",
    "luhn_valid",
    "redact_card_numbers",
]

MASKED_CODE = "•••"
CAREFUL_PASSES = 3  # passes of redaction that mask card numbers exactly; then whole runs (see redact_card_numbers)
_MASKED_PREFIX = "[card ••••"
# What may join two groups of digits: any non-letter (a line's end too) but a
# currency sign and "•" (our own mask); at most four in a row.
_JOINER = r"(?:(?![$\u00a2-\u00a5\u20a0-\u20bf•])[\W_])"
# A stretch starts at a group's first digit, never at the last four a mask kept (up to 8 digits as read:
# "㉑" reads 21) when they close the mask; "[card ••••4111 1111 1111 1111]" is a card number all the same.
_RUN = re.compile(rf"(?<!\d)(?!(?<=\[card ••••)\d{{0,8}}\])\d+(?:{_JOINER}{{1,4}}\d+)*")
_GROUP = re.compile(r"\d+")
_DIGIT = re.compile(r"\d")
# What is never a card number, and ends any stretch of digits next to it:
# - a calendar date (1900-2099), with its time and offset if it has them (no card
#   range starts 19 or 20), so "2024-05-01T10:30:15.123456+00:00" or a list of dates
#   is not read as digits to join;
# - a UUID with at least one hex letter (as every random one has, but for about one in
#   a million), whose decimal groups would otherwise join ("…-4282-8561-420b…").
_NEVER_A_CARD = re.compile(
    r"(?<!\d)(?:19|20)\d\d(?P<sep>[-/.])(?:0?[1-9]|1[0-2])(?P=sep)(?:0?[1-9]|[12]\d|3[01])"
    r"(?:[T\s](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:[.,]\d{1,9})?)?(?:Z|[+\u2212-](?:[01]\d|2[0-3]):?[0-5]\d)?)?"
    r"(?!\d)"
    r"|(?<![0-9a-f])(?=[\d-]{0,35}[a-f])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![0-9a-f])",
    re.IGNORECASE,
)


def _spaced(word: str) -> str:
    """A label also written letter by letter: C V V, C.V.V., c-v-v."""
    return r"[\s._-]?".join(re.escape(letter) for letter in word)


_EN_LABELS = "|".join(_spaced(w) for w in ("cvv2", "cvc2", "cvn2", "cav2", "cvv", "cvc", "cvn", "cvd", "cid", "csc"))
_LABEL = (
    rf"(?<![a-z])(?:{_EN_LABELS}"
    r"|sec(?:urity)?[\s._-]*(?:code|number|no)"
    r"|card[\s._-]*verification(?:[\s._-]*(?:value|code|number))?"
    r")(?![a-z])"
    # Japanese: セキュリティ(ー)(・)コード / 番号 / ナンバー; a halfwidth ﾄﾞ folds to ト and a mark.
    r"|セキュリティー?[・\s]?(?:コー?(?:ド|ト\u3099)|番号|ナンバー)"
    r"|カード(?:の)?確認(?:コー?(?:ド|ト\u3099)|番号)"
)
# Between the label and the code: punctuation, brackets and a few words ("CVV code is 321").
_GAP = (
    r"(?:[\s:=#\-–—−()\[\]{}<>、,。.はがを]"
    r"|(?<![a-z])(?:is|was|of|no|number|num|code|the|card|value|given|as|reads?)(?![a-z])"
    r"|番号|です|の)*"
)
# A code is 3-4 digits (or written apart: 7 8 9), and not the start of a date or longer number.
_CODE = r"(?<!\d)(?:\d{3,4}|\d(?:[\s.\-]\d){2,3})(?![\-/.:]?\d)"
# Every code holds three digits in a row, or apart by one separator: text without them has none (a cheap test
# first, as the labels' search costs as much as the whole card-number scan).
_THREE_DIGITS = re.compile(r"\d(?:[\s.\-]?\d){2}")
_SECURITY_CODE = re.compile(rf"(?P<label>{_LABEL})(?P<gap>{_GAP})(?P<code>{_CODE})", re.IGNORECASE)
_CODE_FIELD_TOKENS = {"cvv", "cvv2", "cvc", "cvc2", "csc", "cvn", "cid", "securitycode"}
# Phone fields: a number in international form (+, at most E.164's 15 digits) is a phone, whatever Luhn says.
PHONE_FIELDS = frozenset({"phone", "registered_phone", "daytime_phone"})
_INTERNATIONAL_PHONE = re.compile(r"\s*\+[\d\s()-]+")


_DOUBLED = str.maketrans("0123456789", "0246813579")  # a digit doubled, its two digits summed


def luhn_valid(digits: str) -> bool:
    """The Luhn check every card number passes (digits only, any script)."""
    if not digits.isascii():
        digits = "".join(str(int(char)) for char in digits)
    kept, doubled = digits[-1::-2], digits[-2::-2].translate(_DOUBLED)
    return sum(map(int, kept + doubled)) % 10 == 0


def _is_pan_digits(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def looks_like_pan(value: str) -> bool:
    """True when the whole value is one Luhn-valid 13-19 digit number, however separated."""
    read = read_as_digits(value).text.strip()
    if not _RUN.fullmatch(read):
        return False
    return _is_pan_digits("".join(_GROUP.findall(read)))


def _card_spans(run: str) -> list[tuple[int, int]]:
    """Spans of `run` (offsets in it) that are card numbers.

    Any whole-group stretch of the run may be a card number (the digits before
    it can be a phone number typed next to it), so every Luhn-valid stretch of
    13-19 digits is masked; overlapping stretches are masked as one.
    """
    groups = list(_GROUP.finditer(run))
    digits = "".join(g.group() for g in groups)
    if len(digits) < 13:
        return []  # most runs: dates, amounts, parts of phone numbers
    ends = list(accumulate(len(g.group()) for g in groups))  # where each group ends in `digits`
    hits: list[tuple[int, int]] = []
    for first, group in enumerate(groups):
        start = ends[first] - len(group.group())
        for last in range(first, len(groups)):
            length = ends[last] - start
            if length > 19:
                break
            if length >= 13 and luhn_valid(digits[start : ends[last]]):
                hits.append((first, last))
    merged: list[list[int]] = []
    for first, last in sorted(hits):
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return [(groups[first].start(), groups[last].end()) for first, last in merged]


def _without_dates_and_ids(text: str) -> str:
    """The text with each date (and time) and UUID blanked out, character for character."""
    if not _NEVER_A_CARD.search(text):
        return text
    return _NEVER_A_CARD.sub(lambda m: "x" * len(m.group()), text)


def _spans_in(text: str) -> list[tuple[int, int]]:
    return [(run.start() + s, run.start() + e) for run in _RUN.finditer(text) for s, e in _card_spans(run.group())]


def _reaches_past_one_date(span: tuple[int, int], dates: list[tuple[int, int]]) -> bool:
    """A stretch holding one whole date and digits beyond it, touching no other date (a list of dates is dates)."""
    start, end = span
    touched = [(d_start, d_end) for d_start, d_end in dates if d_start < end and start < d_end]
    if len(touched) != 1:
        return False
    d_start, d_end = touched[0]
    return start <= d_start and d_end <= end and (start < d_start or d_end < end)


def _card_number_spans(read: ReadText) -> list[tuple[int, int]]:
    """Spans of the folded text that are card numbers.

    Dates end a stretch of digits, but a card number can be grouped so that part
    of it reads as one ("4111 2000-1-10 111..."): a card number that reaches past
    a date on either side is a card number all the same.
    """
    if len(_DIGIT.findall(read.text)) < 13:
        return []  # fewer digits than the shortest card number: most notes, every path (a tenth of the work)
    blanked = _without_dates_and_ids(read.text)
    spans = _spans_in(blanked)
    if blanked is read.text:
        return spans
    dates = [m.span() for m in _NEVER_A_CARD.finditer(read.text) if m.group("sep")]
    spans += [span for span in _spans_in(read.text) if _reaches_past_one_date(span, dates)]
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _last4(written: str, start: int, end: int) -> str:
    """The last four digits as they were written (a fullwidth number keeps fullwidth digits)."""
    kept = [c for c in written[start:end] if read_as_digits(c).text.isdigit()]
    return "".join(kept[-4:])


def _replace(
    written: str, read: ReadText, spans: list[tuple[int, int]], mask: str | Callable[[int, int], str]
) -> str:
    out, cursor = [], 0
    for start, end in spans:
        w_start, w_end = read.span_in_written(start, end)
        out.append(written[cursor:w_start])
        out.append(mask if isinstance(mask, str) else mask(w_start, w_end))
        cursor = w_end
    out.append(written[cursor:])
    return "".join(out)


def _whole_runs_around(read: ReadText, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The whole runs of digits and joiners that hold the spans (each run once, in order)."""
    runs = [run.span() for run in _RUN.finditer(read.text)]
    starts = [start for start, _ in runs]
    held: set[tuple[int, int]] = set()
    for start, end in spans:
        at = bisect_right(starts, start) - 1  # the last run starting at or before the span
        held.add(runs[at] if at >= 0 and end <= runs[at][1] else (start, end))
    return sorted(held)


def _masked_number(written: str, start: int, end: int) -> str:
    return f"{_MASKED_PREFIX}{_last4(written, start, end)}]"


def redact_card_numbers(text: str) -> str:
    """Mask card numbers (keeping the last four) and security codes named as such."""
    read = read_as_digits(text)
    spans = _card_number_spans(read)
    # Again until nothing is left: a character read as several digits ("¼" is 1⁄4) can join two numbers
    # and be masked with the first, leaving the second a stretch of its own. A text made to cascade
    # (number, ¼, number, ¼...) would need a pass per number, each over the whole text: after
    # CAREFUL_PASSES the runs still holding a card number are masked whole. Each pass masks at least
    # 13 digits and keeps 4 characters (at most 8 digits, which no stretch starts from), so it ends.
    passes = 0
    while spans:
        if passes >= CAREFUL_PASSES:
            spans = _whole_runs_around(read, spans)
        text = _replace(text, read, spans, partial(_masked_number, text))
        read = read_as_digits(text)
        spans = _card_number_spans(read)
        passes += 1
    codes = [m.span("code") for m in _SECURITY_CODE.finditer(read.text)] if _THREE_DIGITS.search(read.text) else []
    return _replace(text, read, codes, MASKED_CODE) if codes else text


def contains_card_data(text: str) -> bool:
    """True when redaction would change the text (without building the redacted text)."""
    read = read_as_digits(text)
    if _card_number_spans(read):
        return True
    return _THREE_DIGITS.search(read.text) is not None and _SECURITY_CODE.search(read.text) is not None


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
    return re.fullmatch(r"\s*\d{3,4}\s*", read_as_digits(value).text) is not None


def _is_international_phone(value: str) -> bool:
    read = read_as_digits(value).text
    return _INTERNATIONAL_PHONE.fullmatch(read) is not None and sum(c.isdigit() for c in read) <= 15


def holds_card_data(field: str, value: str) -> bool:
    """The one test of a structured value: a card number or security code anywhere in it.

    The HTTP layer asks it of every structured string of every request, the
    breach intake of every column, the domain of the fields it decides on.
    """
    if field in PHONE_FIELDS and _is_international_phone(value):
        return False
    return contains_card_data(value) or looks_like_security_code(field, value)


def check_structured_field(field: str, value: str | None) -> None:
    """Refuse (`CardDataRefused(field)`) a value holding a card number or security code."""
    if value is not None and holds_card_data(field, value):
        raise CardDataRefused(field)
