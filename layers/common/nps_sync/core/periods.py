"""Period buckets by UTC date: labels that sort as strings within one granularity."""

from collections.abc import Iterator
from datetime import date, datetime, timedelta

from nps_sync.core.errors import BadRequest
from nps_sync.core.models import EARLIEST

GRANULARITIES = ("day", "week", "month", "quarter", "year", "all")
ALL = "all"
# What counter items are kept for: every other granularity is summed on read from these, in
# one Query (``stored``/``rollup``), so a response writes two keys per segment, not six.
STORED = ("day", "month")
# The days a range of periods may span: no answer is older than FIRST_DAY (models.EARLIEST),
# and after LAST_DAY the period following a year would not fit in a date.
FIRST_DAY = EARLIEST.date()
LAST_DAY = date(9998, 12, 31)


def label(granularity: str, day: date) -> str:
    if granularity == "day":
        return day.isoformat()
    if granularity == "week":
        iso_year, week, _ = day.isocalendar()
        return f"{iso_year:04d}-W{week:02d}"
    if granularity == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if granularity == "quarter":
        return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"
    if granularity == "year":
        return f"{day.year:04d}"
    if granularity == ALL:
        return ALL
    raise ValueError(f"unknown granularity {granularity!r}")


def labels(day: date) -> dict[str, str]:
    """The stored granularities' labels of one date: the counter keys a response adds to."""
    return {granularity: label(granularity, day) for granularity in STORED}


def stored(granularity: str) -> str:
    """The stored granularity a granularity is summed from: days for weeks (a week can span
    two months), months for quarters, years and all time. Others (outcomes' ``now``) are
    stored as they are."""
    if granularity in ("day", "week"):
        return "day"
    if granularity in ("month", "quarter", "year", ALL):
        return "month"
    return granularity


def rollup(granularity: str, stored_label: str) -> str:
    """The label of ``granularity`` that a label of its stored granularity falls in."""
    base = stored(granularity)
    if base == granularity:
        return stored_label  # stored as asked: day, month, outcomes' ``now``
    if granularity == ALL:
        return ALL
    return label(granularity, period_dates(base, stored_label)[0])


def stored_bounds(granularity: str, first: str, last: str) -> tuple[str, str]:
    """The stored labels that periods ``first``..``last`` of ``granularity`` span."""
    base = stored(granularity)
    if base == granularity:
        return first, last
    if granularity == ALL:
        return "", "\U0010ffff"
    return label(base, period_dates(granularity, first)[0]), label(
        base, period_dates(granularity, last)[1]
    )


def utc_date(timestamp: str) -> date:
    """The UTC date of a stored timestamp (``2026-03-02T10:15:00.000000Z``)."""
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).date()


def _start(granularity: str, day: date) -> date:
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    if granularity == "quarter":
        return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    if granularity == "year":
        return date(day.year, 1, 1)
    return day


def _next(granularity: str, start: date) -> date:
    if granularity == "day":
        return start + timedelta(days=1)
    if granularity == "week":
        return start + timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[granularity]
    total = start.year * 12 + start.month - 1 + months
    return date(total // 12, total % 12 + 1, 1)


def between(granularity: str, first: date, last: date) -> Iterator[str]:
    """Labels of every period that overlaps first..last (inclusive), in order."""
    if not (FIRST_DAY <= first <= LAST_DAY and FIRST_DAY <= last <= LAST_DAY):
        raise BadRequest(f"from and to must be dates from {FIRST_DAY} to {LAST_DAY}")
    if granularity == ALL:
        yield ALL
        return
    current = _start(granularity, first)
    while current <= last:
        yield label(granularity, current)
        current = _next(granularity, current)


def period_dates(granularity: str, period: str) -> tuple[date, date]:
    """First and last day of a period label (the inverse of periods.label)."""
    if granularity == "day":
        day = date.fromisoformat(period)
        return day, day
    if granularity == "week":
        year, week = period.split("-W")
        first = date.fromisocalendar(int(year), int(week), 1)
        return first, first + timedelta(days=6)
    if granularity == "month":
        year, month = (int(part) for part in period.split("-"))
        first = date(year, month, 1)
        months = 1
    elif granularity == "quarter":
        year, quarter = period.split("-Q")
        first = date(int(year), (int(quarter) - 1) * 3 + 1, 1)
        months = 3
    elif granularity == "year":
        first, months = date(int(period), 1, 1), 12
    else:
        raise ValueError(f"no dates for granularity {granularity!r}")
    total = first.year * 12 + first.month - 1 + months
    following = date(total // 12, total % 12 + 1, 1) if total // 12 <= date.max.year else None
    return first, (following - timedelta(days=1)) if following else date.max
