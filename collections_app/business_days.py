"""Bank business days: TARGET2 closing days (the SEPA calendar), plus French bank holidays
where a French business day is asked for. Dates are business dates, computed in the
creditor's or customer's time zone by the caller."""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from django.utils import timezone


@lru_cache(maxsize=64)
def _target2(year: int) -> frozenset[dt.date]:
    return frozenset(holidays.financial_holidays("ECB", years=year).keys())


@lru_cache(maxsize=64)
def _france(year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays("FR", years=year).keys())


def is_target2_business_day(day: dt.date) -> bool:
    return day.weekday() < 5 and day not in _target2(day.year)


def is_french_business_day(day: dt.date) -> bool:
    return is_target2_business_day(day) and day not in _france(day.year)


def is_business_day(day: dt.date, *, calendar: str = "TARGET2") -> bool:
    if calendar == "FR":
        return is_french_business_day(day)
    return is_target2_business_day(day)


def next_business_day(day: dt.date, *, calendar: str = "TARGET2", include_today: bool = True) -> dt.date:
    current = day if include_today else day + dt.timedelta(days=1)
    while not is_business_day(current, calendar=calendar):
        current += dt.timedelta(days=1)
    return current


def add_business_days(day: dt.date, count: int, *, calendar: str = "TARGET2") -> dt.date:
    """`count` business days after `day` (count may be 0: the next business day from day)."""
    current = next_business_day(day, calendar=calendar)
    step = 1 if count >= 0 else -1
    remaining = abs(count)
    while remaining:
        current += dt.timedelta(days=step)
        if is_business_day(current, calendar=calendar):
            remaining -= 1
    return current


def local_today(tz_name: str, *, now: dt.datetime | None = None) -> dt.date:
    """Today's date in a creditor's or customer's time zone."""
    moment = now or timezone.now()
    return moment.astimezone(ZoneInfo(tz_name)).date()
