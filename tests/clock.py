"""Times for test bodies, always relative to now.

A test that writes a fixed date starts failing the day that date passes (a
callback `due_at` of 2026-11-25 turned `make test` red on every fresh clone);
every time a test sends is derived from the clock here instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def from_now(*, days: float = 0, hours: float = 0) -> str:
    """An RFC 3339 time `days`/`hours` after now (before now when negative)."""
    return (datetime.now(UTC) + timedelta(days=days, hours=hours)).isoformat()


def ago(*, days: float = 0, hours: float = 0) -> str:
    """An RFC 3339 time `days`/`hours` before now, e.g. when a charge happened."""
    return from_now(days=-days, hours=-hours)
