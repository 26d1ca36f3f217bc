"""The dashboard's reads beyond GET /nps: segment values, the score distribution, the latest
detractors (docs/dashboard.md). Every one is a Query: on the sparse index by_dimension of
AggregatesTable, on the score aggregates, on the sparse index recent_detractors of RecordsTable.
"""

from collections.abc import Iterable
from datetime import date
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, create_model

from nps_sync.core.aggregates import Counts
from nps_sync.core.errors import BadRequest
from nps_sync.core.models import category_of
from nps_sync.query.series import AggregateReader, Bucket, bucket, nps_series

SCORE = "score"  # the aggregate dimension whose values are the answers 0-10
SCORES = range(11)
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
    granularity: str | None = None,
    first: date | None = None,
    last: date | None = None,
    window: str | None = None,
) -> dict[str, Any]:
    """How many answered each score 0-10 (one Query per score on the score aggregates), over
    all time, a from/to range of periods, or a window of days: the parameters of GET /nps."""
    dimensions = tuple(dimensions)
    if SCORE not in dimensions:
        raise BadRequest("the score distribution needs the dimension score in AggregateDimensions")
    counts: dict[int, int] = {}
    series: dict[str, Any] = {}
    for score in SCORES:
        series = nps_series(
            reader,
            dimensions,
            today,
            dimension=SCORE,
            value=str(score),
            granularity=granularity,
            first=first,
            last=last,
            window=window,
        )
        counts[score] = sum(b["n"] for b in series["buckets"])
    body = {k: v for k, v in series.items() if k not in ("dimension", "value", "buckets")}
    return {
        **body,
        "n": sum(counts.values()),
        "scores": [
            {"score": s, "category": category_of(s).value, "count": counts[s]} for s in SCORES
        ],
    }


def _text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name) or {}
    return value.get("S", value.get("N"))


def detractor(item: dict[str, Any]) -> dict[str, Any]:
    """One detractor response as the dashboard lists it (the fields of detractor.alert)."""
    amount = _text(item, "mrr_amount")
    return {
        "response_id": _text(item, "response_id"),
        "provider": _text(item, "provider"),
        "customer_key": _text(item, "customer_key"),
        "score": int(_text(item, "score") or 0),
        "comment": _text(item, "comment"),
        "submitted_at": _text(item, "submitted_at"),
        **{name: _text(item, name) for name in ("survey", "channel", "plan", "region", "account")},
        "mrr_at_risk": (
            {"amount": round(float(amount)), "currency": _text(item, "mrr_currency")}
            if amount is not None
            else None
        ),
    }


def recent_detractors(reader: DetractorReader, limit: int) -> dict[str, Any]:
    if not 1 <= limit <= MAX_DETRACTORS:
        raise BadRequest(f"limit must be 1..{MAX_DETRACTORS}")
    return {"detractors": [detractor(item) for item in reader.recent_detractors(limit)]}
