"""The dashboard's reads beyond GET /nps: segment values, the score distribution, the latest
detractors (docs/dashboard.md). Every one is a Query: on the sparse keys-only index
dimension_values of AggregatesTable and the values' months, on the overall counters (their
score histogram), on the sparse index recent_detractors of RecordsTable.
"""

from collections.abc import Iterable
from datetime import date
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, create_model

from nps_sync.core.aggregates import SCORES, Counts
from nps_sync.core.errors import BadRequest
from nps_sync.core.models import StoredResponse, category_of
from nps_sync.query.ranges import SeriesQuery
from nps_sync.query.series import AggregateReader, Bucket, bucket, summed
from nps_sync.store.items import stored_response

MAX_SEGMENTS = 1000
MAX_DETRACTORS = 100


# A segment's answer: its value, then the fields of its all-time bucket (in that order).
Segment = create_model(
    "Segment", value=str, **{name: (f.annotation, f) for name, f in Bucket.model_fields.items()}
)


class Segments(BaseModel):
    dimension: str
    segments: list[Segment]
    truncated: bool  # more values than the limit


class ScoreCount(BaseModel):
    score: int
    category: str
    count: int


class Distribution(BaseModel):
    model_config = ConfigDict(extra="allow")  # window, from/to of the range asked for

    granularity: str
    n: int
    scores: list[ScoreCount]


class Money(BaseModel):
    amount: int  # minor units per month
    currency: str | None


class Detractor(BaseModel):
    response_id: str | None
    provider: str | None
    customer_key: str | None
    score: int
    comment: str | None
    submitted_at: str | None
    survey: str | None
    channel: str | None
    plan: str | None
    region: str | None
    account: str | None
    mrr_at_risk: Money | None


class Detractors(BaseModel):
    detractors: list[Detractor]


class SegmentLister(Protocol):
    def listing(self, dimension: str, limit: int) -> tuple[dict[str, Counts], bool]: ...


class DetractorReader(Protocol):
    def recent_detractors(self, limit: int) -> list[dict[str, Any]]: ...


def segments(
    lister: SegmentLister, dimensions: Iterable[str], dimension: str, limit: int
) -> dict[str, Any]:
    """A dimension's known values with their all-time NPS, by value."""
    dimensions = tuple(dimensions)
    if dimension not in dimensions:
        raise BadRequest(f"dimension must be one of {', '.join(dimensions)}")
    found, truncated = lister.listing(dimension, min(limit, MAX_SEGMENTS))
    return {
        "dimension": dimension,
        "segments": [{"value": value, **bucket("all", found[value])} for value in sorted(found)],
        "truncated": truncated,
    }


def distribution(
    reader: AggregateReader,
    dimensions: Iterable[str],
    today: date,
    query: SeriesQuery = SeriesQuery(),
) -> dict[str, Any]:
    """How many answered each score 0-10, over all time, a from/to range of periods, or a
    window of days (the parameters of GET /nps): the score histogram every counter item holds,
    summed over the periods asked for, in the one Query of the overall series."""
    body, counts = summed(reader, dimensions, today, query)
    scores = counts.histogram()
    body = {k: v for k, v in body.items() if k not in ("dimension", "value")}
    return {
        **body,
        "n": sum(scores.values()),
        "scores": [
            {"score": s, "category": category_of(s).value, "count": scores[s]} for s in SCORES
        ],
    }


def detractor(response: StoredResponse) -> dict[str, Any]:
    """One detractor response as the dashboard lists it (the fields of detractor.alert)."""
    amount = response.mrr_amount
    return {
        "response_id": response.response_id,
        "provider": response.provider,
        "customer_key": response.customer_key,
        "score": response.score or 0,
        "comment": response.comment,
        "submitted_at": response.submitted_at,
        "survey": response.survey,
        "channel": response.channel,
        "plan": response.plan,
        "region": response.region,
        "account": response.account,
        "mrr_at_risk": (
            {"amount": amount, "currency": response.mrr_currency} if amount is not None else None
        ),
    }


def recent_detractors(reader: DetractorReader, limit: int) -> dict[str, Any]:
    if not 1 <= limit <= MAX_DETRACTORS:
        raise BadRequest(f"limit must be 1..{MAX_DETRACTORS}")
    found = map(stored_response, reader.recent_detractors(limit))
    return {"detractors": [detractor(response) for response in found if response is not None]}
