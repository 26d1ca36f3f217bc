"""What a read asks for, checked alike for GET /nps, /distribution and /outcomes: a segment
(dimension and value) and a range (a granularity, from/to, or a window of days)."""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from nps_sync.core.aggregates import OVERALL
from nps_sync.core.errors import BadRequest
from nps_sync.core.periods import ALL, GRANULARITIES, between

MAX_BUCKETS = 1000
MAX_WINDOW_DAYS = 400


@dataclass(frozen=True)
class SeriesQuery:
    """A segment read as the API receives it (GET /nps, /outcomes, /distribution); checked by
    segment_value and asked_range."""

    dimension: str = OVERALL
    value: str | None = None
    granularity: str | None = None
    first: date | None = None
    last: date | None = None
    window: str | None = None


def segment_value(dimensions: Iterable[str], dimension: str, value: str | None) -> str:
    """The value asked for, checked against the dimension ("all" for overall)."""
    dimensions = tuple(dimensions)
    if dimension not in dimensions:
        raise BadRequest(f"dimension must be one of {', '.join(dimensions)}")
    if dimension == OVERALL:
        if value not in (None, "", "all"):
            raise BadRequest("dimension overall takes no value")
        return "all"
    if not value:
        raise BadRequest(f"dimension {dimension} needs a value")
    return value


def window_days(window: str) -> int:
    found = re.fullmatch(r"([1-9][0-9]{0,2})d", window)
    if not found or int(found.group(1)) > MAX_WINDOW_DAYS:
        raise BadRequest(f"window must be <days>d with 1..{MAX_WINDOW_DAYS} days, like 30d or 90d")
    return int(found.group(1))


@dataclass(frozen=True)
class Range:
    """A checked range. A window sums the days first..last (granularity day); with periods,
    one bucket for each; without (and no window), every stored period, or ``all``."""

    granularity: str
    window: str | None = None
    first: date | None = None
    last: date | None = None
    periods: tuple[str, ...] | None = None

    def dates(self) -> dict[str, str]:
        """The answer's from/to."""
        return {"from": self.first.isoformat(), "to": self.last.isoformat()}


def asked_range(
    today: date,
    granularity: str | None = None,
    first: date | None = None,
    last: date | None = None,
    window: str | None = None,
) -> Range:
    if window is not None:
        if first is not None or last is not None:
            raise BadRequest("give either window or from/to, not both")
        if granularity not in (None, "day"):
            raise BadRequest("window sums daily buckets: leave granularity out")
        days = window_days(window)
        return Range("day", window, today - timedelta(days=days - 1), today)
    granularity = granularity or ALL
    if granularity not in GRANULARITIES:
        raise BadRequest(f"granularity must be one of {', '.join(GRANULARITIES)}")
    if granularity == ALL:
        if first is not None or last is not None:
            raise BadRequest("from/to need a granularity other than all")
        return Range(ALL)
    if first is None and last is not None:
        raise BadRequest("to needs from")
    if first is None:
        return Range(granularity)
    last = last or today
    if last < first:
        raise BadRequest("to is before from")
    periods = []
    for period in between(granularity, first, last):
        periods.append(period)
        if len(periods) > MAX_BUCKETS:
            raise BadRequest(f"more than {MAX_BUCKETS} buckets: use a coarser granularity")
    return Range(granularity, first=first, last=last, periods=tuple(periods))
