"""The card numbers and security codes an attacker sends, and the search that must not find them.

Nothing here uses casedesk's own detection: the search is independent (and
wider), so a hole in `casedesk.domain.card_data` cannot hide itself.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import unicodedata
import zlib
from dataclasses import dataclass, field

PREFIXES = [("4", 16), ("4", 13), ("51", 16), ("2221", 16), ("37", 15), ("6011", 16), ("35", 16), ("62", 19),
            ("6", 17), ("5", 18)]


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _groups(digits: str, size: int = 4) -> list[str]:
    return [digits[i : i + size] for i in range(0, len(digits), size)]


def _in_script(digits: str, zero: str) -> str:
    return "".join(chr(ord(zero) + int(d)) for d in digits)


# Every way of writing the number the attack used (issue 15), each a function of the digits.
WRITINGS = [
    lambda d: d,
    lambda d: " ".join(_groups(d)),
    lambda d: "-".join(_groups(d)),
    lambda d: ".".join(_groups(d)),
    lambda d: "/".join(_groups(d)),
    lambda d: ",".join(_groups(d)),
    lambda d: "_".join(_groups(d)),
    lambda d: "  ".join(_groups(d)),
    lambda d: f"({d[:4]}) " + " ".join(_groups(d[4:])),
    lambda d: "\u2212".join(_groups(d)),
    lambda d: "\u200b".join(d),
    lambda d: "\u2060".join(_groups(d)),
    lambda d: "\ufeff".join(_groups(d)),
    lambda d: "\u200f".join(_groups(d)),
    lambda d: "\u00ad".join(_groups(d)),
    lambda d: _in_script(d, "０"),
    lambda d: "\u3000".join(_groups(_in_script(d, "０"))),
    lambda d: _in_script(d, "٠"),
    lambda d: " - ".join(_groups(d, 3)),
    lambda d: ":".join(_groups(d, 2)),
    lambda d: "\n".join(_groups(d)),
]

LABELS = ["CVV-{}", "CVV code {}", "cvv ({})", "C V V {}", "c\u200bv\u200bv {}", "CVC: {}", "cvc2 is {}", "CID {}",
          "security code {}", "Security Code: {}", "card verification value {}", "ＣＶＶ {}",
          "セキュリティコード：{}", "セキュリティーコードは{}です", "ｾｷｭﾘﾃｨｺｰﾄﾞ {}", "CVV番号 {}"]


@dataclass
class Corpus:
    """Hands out fresh card numbers and security codes, and remembers every one it gave."""

    rng: random.Random = field(default_factory=lambda: random.Random(20261205))
    numbers: list[str] = field(default_factory=list)
    codes: list[tuple[str, str]] = field(default_factory=list)  # (phrase as sent, code)

    def number(self) -> str:
        """A fresh Luhn-valid number, written the next way."""
        prefix, length = PREFIXES[len(self.numbers) % len(PREFIXES)]
        body = prefix + "".join(self.rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
        digits = body + next(d for d in "0123456789" if luhn_valid(body + d))
        self.numbers.append(digits)
        return WRITINGS[len(self.numbers) % len(WRITINGS)](digits)

    def header_number(self) -> str:
        """A fresh number written a way an HTTP header can carry (no line breaks)."""
        while "\n" in (written := self.number()):
            pass
        return written

    def code(self) -> str:
        """A security code in the next phrasing."""
        code = str(self.rng.randrange(100, 10_000))
        phrase = LABELS[len(self.codes) % len(LABELS)].format(code)
        self.codes.append((phrase, code))
        return phrase

    def free_text(self) -> str:
        return f"customer read out {self.number()} and {self.number()}, {self.code()}; also {self.code()}"


def readable(raw: str) -> str:
    """Text as a person would read it: NFKC, without format characters."""
    folded = unicodedata.normalize("NFKC", raw)
    return "".join(c for c in folded if unicodedata.category(c) != "Cf")


def _bytea_texts(dump: str) -> list[str]:
    """bytea values of a pg_dump (\\x...), as text, decompressed when they are zlib."""
    texts = []
    for blob in re.findall(r"\\\\x([0-9a-f]{16,})", dump):
        data = bytes.fromhex(blob)
        with contextlib.suppress(zlib.error):
            data = zlib.decompress(data)
        texts.append(data.decode("utf-8", "replace"))
    return texts


def _log_texts(log: str) -> list[str]:
    """Each JSON log line with its escapes read (\\u200b is the character again)."""
    texts = []
    for line in log.splitlines():
        try:
            texts.append(json.dumps(json.loads(line), ensure_ascii=False))
        except ValueError:
            texts.append(line)
    return texts


# Digits joined by up to four of anything that is not a letter or digit: wider than casedesk's own rule.
_DIGIT_RUN = re.compile(r"\d+(?:[^\w]{1,4}\d+|_{1,4}\d+)*")


@dataclass
class Finding:
    where: str
    what: str


def search(corpus: Corpus, places: dict[str, str]) -> list[Finding]:
    """Every number and code of the corpus found in the places (name -> raw text)."""
    found: list[Finding] = []
    for where, raw in places.items():
        texts = [raw, *_bytea_texts(raw), *_log_texts(raw)]
        read = "\n".join(readable(t) for t in texts)
        runs = "|".join(re.sub(r"\D", "", m.group()) for m in _DIGIT_RUN.finditer(read))
        runs = "".join(str(int(c)) if c.isdigit() else c for c in runs)
        lowered = raw.lower()
        for digits in corpus.numbers:
            if digits in runs:
                found.append(Finding(where, f"card number {digits[:6]}…{digits[-4:]}"))
            if digits.encode().hex() in lowered:
                found.append(Finding(where, f"card number {digits[:6]}…{digits[-4:]} as hex"))
        for phrase, code in corpus.codes:
            label = re.escape(readable(phrase).split(code)[0].strip(" :(-"))
            if re.search(rf"{label}\D{{0,12}}{code}(?!\d)", read, re.IGNORECASE):
                found.append(Finding(where, f"security code after {readable(phrase).split(code)[0]!r}"))
    return found
