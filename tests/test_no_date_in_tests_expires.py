"""No test sends a fixed date that will one day be in the past (issue 14, item 1).

A callback `due_at` of 2026-11-25 written into a test body turned `make test`
red on every fresh clone from that day on. Dates a test sends are derived from
the clock (tests/clock.py); a literal date is fine only if it is already past
(a breach window, a charge), since a past date stays past. This reads every
test module and fails on a literal date later than today.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

TESTS = Path(__file__).parent
DATE = re.compile(r"(?<![0-9])(20[0-9]{2})-([01][0-9])-([0-3][0-9])(?![0-9])")
# Dates that are text, not times sent: samples the card-number redaction must leave alone.
TEXT_SAMPLES = {"domain/test_card_data_written_forms.py"}


def future_dates(source: str, today: date) -> list[str]:
    found = []
    for match in DATE.finditer(source):
        try:
            day = date(*map(int, match.groups()))
        except ValueError:
            continue
        if day > today:
            found.append(match.group(0))
    return found


def test_no_test_module_holds_a_date_after_today() -> None:
    today = datetime.now(UTC).date()
    offenders = {}
    # The golden events too: their date-times are NOW, filled from the clock by the test.
    for module in sorted([*TESTS.rglob("*.py"), *(TESTS / "domain" / "golden").glob("*.json")]):
        name = module.relative_to(TESTS).as_posix()
        if name in TEXT_SAMPLES:
            continue
        if found := future_dates(module.read_text(encoding="utf-8"), today):
            offenders[name] = found
    assert offenders == {}, f"derive these from tests/clock.py (from_now, ago): {offenders}"


def test_the_check_finds_a_date_that_will_expire() -> None:
    today = datetime.now(UTC).date()
    later, earlier = (today + timedelta(days=24)).isoformat(), (today - timedelta(days=1)).isoformat()
    assert future_dates(f'"due_at": "{later}T10:00:00+09:00"', today) == [later]
    assert future_dates(f'"due_at": "{earlier}T10:00:00+09:00"', today) == []
