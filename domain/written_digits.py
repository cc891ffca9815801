"""Text as the card-data checks read it: every way of writing a digit becomes the digit.

People (and attackers) write a card number with fullwidth or other scripts'
digits, and with zero-width or other invisible format characters between them.
`read_as_digits` folds each character with NFKC and drops format characters
(Unicode category Cf: U+200B, U+2060, U+FEFF, U+200F, U+00AD...), and keeps,
for every character of the folded text, where it came from, so that a match
found in the folded text masks exactly the characters the person wrote.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReadText:
    """The folded text, and for each of its characters the index it came from (None: the same text)."""

    text: str
    origin: tuple[int, ...] | None

    def span_in_written(self, start: int, end: int) -> tuple[int, int]:
        """The written text's span for the folded span [start, end) (end > start)."""
        if self.origin is None:
            return start, end
        return self.origin[start], self.origin[end - 1] + 1


def read_as_digits(written: str) -> ReadText:
    """Fold `written` per character with NFKC, without its format characters."""
    if written.isascii():
        return ReadText(written, None)  # ASCII folds to itself: the common, fast case
    chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(written):
        if char.isascii():
            chars.append(char)
            origin.append(index)
            continue
        if unicodedata.category(char) == "Cf":
            continue
        # Per character, not per string: a match must map back to whole written characters.
        folded = unicodedata.normalize("NFKC", char)
        chars.append(folded)
        origin.extend([index] * len(folded))
    return ReadText("".join(chars), tuple(origin))
