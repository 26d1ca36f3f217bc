"""GET /nps: a series of buckets for one dimension value, from the stored aggregates."""

from collections.abc import Iterable
from datetime import date
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from nps_sync.core.aggregates import ZERO, Counts
from nps_sync.core.nps import margin_of_error, nps, revenue_weighted_nps
from nps_sync.core.periods import ALL, label
from nps_sync.query.ranges import Range, SeriesQuery, asked_range, segment_value


class AggregateReader(Protocol):
    def series(
        self, dimension: str, value: str, granularity: str, first: str | None, last: str | None
    ) -> dict[str, Counts]: ...


class Bucket(BaseModel):
    period: str
    promoters: int
    passives: int
    detractors: int
    n: int
    nps: float | None
    margin_of_error: float | None
    revenue_weighted_nps: float | None


class NpsSeries(BaseModel):
    model_config = ConfigDict(extra="allow")  # from/to of the range asked for

    dimension: str
    value: str
    granularity: str
    window: str | None = None
    buckets: list[Bucket]


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


def nps_series(
    reader: AggregateReader,
    dimensions: Iterable[str],
    today: date,
    query: SeriesQuery = SeriesQuery(),
) -> dict[str, Any]:
    body, asked, stored = _read(reader, dimensions, today, query)
    if asked.window is not None:
        return {**body, "buckets": [bucket(asked.window, sum(stored.values(), ZERO))]}
    if asked.granularity == ALL:
        return {**body, "buckets": [bucket(ALL, stored.get(ALL, ZERO))]}
    if asked.periods is None:
        return {**body, "buckets": [bucket(p, stored[p]) for p in sorted(stored)]}
    return {**body, "buckets": [bucket(p, stored.get(p, ZERO)) for p in asked.periods]}


def summed(
    reader: AggregateReader,
    dimensions: Iterable[str],
    today: date,
    query: SeriesQuery = SeriesQuery(),
) -> tuple[dict[str, Any], Counts]:
    """The answer's fields of a read (as GET /nps has them, without buckets) and the counters
    of every period it asks for, summed: the score distribution's read."""
    body, asked, stored = _read(reader, dimensions, today, query)
    periods = stored.values() if asked.periods is None else map(stored.get, asked.periods)
    return body, sum((counts or ZERO for counts in periods), ZERO)


def _read(
    reader: AggregateReader, dimensions: Iterable[str], today: date, query: SeriesQuery
) -> tuple[dict[str, Any], Range, dict[str, Counts]]:
    """One read of the stored counters for what ``query`` asks: the answer's fields, the
    range, and period -> counters (a window: its days)."""
    dimension, window = query.dimension, query.window
    value = segment_value(dimensions, dimension, query.value)
    asked = asked_range(today, query.granularity, query.first, query.last, window)
    body: dict[str, Any] = {
        "dimension": dimension,
        "value": value,
        "granularity": asked.granularity,
    }
    if asked.window is not None:
        days = label("day", asked.first), label("day", asked.last)
        stored = reader.series(dimension, value, "day", *days)
        return {**body, "window": window, **asked.dates()}, asked, stored
    if asked.granularity == ALL:
        return body, asked, reader.series(dimension, value, ALL, ALL, ALL)
    if asked.periods is None:
        return body, asked, reader.series(dimension, value, asked.granularity, None, None)
    periods = asked.periods
    stored = reader.series(dimension, value, asked.granularity, periods[0], periods[-1])
    return {**body, **asked.dates()}, asked, stored
