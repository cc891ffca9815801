"""Whole numbers in a query string: ASCII digits within bounds, or the caller gets a 422.

Python's int() is too kind for a wire format: it takes " 7", "+7", "7_0" and
other scripts' digits, and raises for more than 4300 digits (a 500 if
unchecked). Every numeric query parameter reads through here instead.
"""

from __future__ import annotations

BIGINT = 2**63 - 1  # PostgreSQL's bigint: positions and versions never pass it


def whole_number(text: str, low: int, high: int) -> int | None:
    """The number `text` spells if it is digits only and within [low, high]; else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(high)):
        return None
    value = int(text)
    return value if low <= value <= high else None
