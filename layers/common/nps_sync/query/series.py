"""GET /nps: a series of buckets for one dimension value, from the stored aggregates."""

import re
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any, Protocol

from nps_sync.core.aggregates import OVERALL, ZERO, Counts
from nps_sync.core.errors import BadRequest
from nps_sync.core.nps import margin_of_error, nps, revenue_weighted_nps
from nps_sync.core.periods import ALL, GRANULARITIES, between, label

MAX_BUCKETS = 1000
MAX_WINDOW_DAYS = 400


class AggregateReader(Protocol):
    def series(
        self, dimension: str, value: str, granularity: str, first: str | None, last: str | None
    ) -> dict[str, Counts]: ...


def bucket(period: str, counts: Counts) -> dict[str, Any]:
    return {
        "period": period,
        "promoters": counts.promoters,
        "passives": counts.passives,
        "detractors": counts.detractors,
        "n": counts.n,
        "nps": nps(counts.promoters, counts.passives, counts.detractors),
        "margin_of_error": margin_of_error(counts.promoters, counts.passives, counts.detractors),
        "revenue_weighted_nps": revenue_weighted_nps(
            counts.mrr_promoters, counts.mrr_passives, counts.mrr_detractors
        ),
    }


def window_days(window: str) -> int:
    found = re.fullmatch(r"([1-9][0-9]{0,2})d", window)
    if not found or int(found.group(1)) > MAX_WINDOW_DAYS:
        raise BadRequest(f"window must be <days>d with 1..{MAX_WINDOW_DAYS} days, like 30d or 90d")
    return int(found.group(1))


def nps_series(
    reader: AggregateReader,
    dimensions: Iterable[str],
    today: date,
    dimension: str = OVERALL,
    value: str | None = None,
    granularity: str | None = None,
    first: date | None = None,
    last: date | None = None,
    window: str | None = None,
) -> dict[str, Any]:
    dimensions = tuple(dimensions)
    if dimension not in dimensions:
        raise BadRequest(f"dimension must be one of {', '.join(dimensions)}")
    if dimension == OVERALL:
        if value not in (None, "", "all"):
            raise BadRequest("dimension overall takes no value")
        value = "all"
    elif not value:
        raise BadRequest(f"dimension {dimension} needs a value")
    body: dict[str, Any] = {"dimension": dimension, "value": value}
    if window is not None:
        if first is not None or last is not None:
            raise BadRequest("give either window or from/to, not both")
        if granularity not in (None, "day"):
            raise BadRequest("window sums daily buckets: leave granularity out")
        days = window_days(window)
        first, last = today - timedelta(days=days - 1), today
        stored = reader.series(dimension, value, "day", label("day", first), label("day", last))
        counts = sum(stored.values(), ZERO)
        return {
            **body,
            "granularity": "day",
            "window": window,
            "from": first.isoformat(),
            "to": last.isoformat(),
            "buckets": [bucket(window, counts)],
        }
    granularity = granularity or ALL
    if granularity not in GRANULARITIES:
        raise BadRequest(f"granularity must be one of {', '.join(GRANULARITIES)}")
    body["granularity"] = granularity
    if granularity == ALL:
        if first is not None or last is not None:
            raise BadRequest("from/to need a granularity other than all")
        stored = reader.series(dimension, value, ALL, ALL, ALL)
        return {**body, "buckets": [bucket(ALL, stored.get(ALL, ZERO))]}
    if first is None and last is not None:
        raise BadRequest("to needs from")
    if first is None:
        stored = reader.series(dimension, value, granularity, None, None)
        return {**body, "buckets": [bucket(p, stored[p]) for p in sorted(stored)]}
    last = last or today
    if last < first:
        raise BadRequest("to is before from")
    periods = []
    for period in between(granularity, first, last):
        periods.append(period)
        if len(periods) > MAX_BUCKETS:
            raise BadRequest(f"more than {MAX_BUCKETS} buckets: use a coarser granularity")
    stored = reader.series(dimension, value, granularity, periods[0], periods[-1])
    body.update({"from": first.isoformat(), "to": last.isoformat()})
    return {**body, "buckets": [bucket(p, stored.get(p, ZERO)) for p in periods]}
