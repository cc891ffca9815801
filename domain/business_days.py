"""Counting days on a clock's calendar: calendar days, or Japanese or US business days.

Holidays come from the `holidays` package, never from a list of our own:
Japan's national holidays plus the bank holidays (31 December to 3 January,
when Japanese banks are closed), and the US federal holidays. A business day is
a weekday that is none of those. A deadline of N days ends with the Nth day
after the day it started (the starting day itself is not counted), at the end
of that day in the policy's zone.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from functools import cache, lru_cache

import holidays

from .clock_policies import Calendar


@cache
def _holidays(calendar: Calendar) -> holidays.HolidayBase:
    # The package fills in each year on first use; one object per calendar suffices.
    if calendar == "business_jp":
        return holidays.country_holidays("JP", categories=("public", "bank"))
    return holidays.country_holidays("US")


def is_business_day(day: date, calendar: Calendar) -> bool:
    """A weekday that is no holiday of that calendar (every day counts on `calendar`)."""
    if calendar == "calendar":
        return True
    return day.weekday() < 5 and day not in _holidays(calendar)


@lru_cache(maxsize=8192)  # pure, and a desk's deadlines fall on a few hundred days
def nth_day_after(start: date, days: int, calendar: Calendar) -> date:
    """The day on which a deadline of `days` days from `start` falls."""
    if calendar == "calendar":
        return start + timedelta(days=days)
    day, counted = start, 0
    while counted < days:
        day += timedelta(days=1)
        if is_business_day(day, calendar):
            counted += 1
    return day


@lru_cache(maxsize=8192)
def end_of(day: date, zone: tzinfo) -> datetime:
    """The first instant after `day` in `zone` (a deadline on `day` holds until then)."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)


def start_of(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)
