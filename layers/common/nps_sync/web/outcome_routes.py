"""Routes GET /outcomes and GET /outcomes/at-risk (docs/outcomes.md), registered on the API's
resolver by nps_sync.web.api; bearer-token auth is the API's middleware."""

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, ConfigDict

from nps_sync.query.outcomes import at_risk_page, outcomes_report
from nps_sync.store.outcomes import AtRiskListing, OutcomesStore

Granularity = Literal["day", "week", "month", "quarter", "year", "all"]
Order = Literal["mrr", "recent"]
MAX_PAGE = 100


class Money(BaseModel):
    amount: int
    currency: str


class Lifetime(Money):
    customers: int  # active customers the average is over (billing_since known)


class CurrentCategory(BaseModel):
    customers: int  # active (not churned) billing customers whose latest answer is this category
    mrr: list[Money]  # their current MRR, minor units, per currency
    avg_lifetime_revenue: list[Lifetime]  # MRR x months since the first billing update


class PeriodCategory(BaseModel):
    churned: int  # by the category at the churn moment
    at_risk: int  # active now + churned from the period's start on
    churn_rate: float | None  # % = churned / at_risk
    renewals: int  # by the category at the renewal moment


class ChurnGap(BaseModel):
    difference: float | None  # detractor churn rate - promoter churn rate, percentage points
    low: float | None  # 95 % interval (Newcombe hybrid score)
    high: float | None
    significant: bool | None  # the interval excludes 0
    method: str


class OutcomeBucket(BaseModel):
    period: str
    categories: dict[str, PeriodCategory]
    churn_gap: ChurnGap


class MrrAtRisk(BaseModel):
    customers: int
    mrr: list[Money]


class Outcomes(BaseModel):
    model_config = ConfigDict(extra="allow")  # from/to, window

    dimension: str
    value: str
    granularity: str
    as_of: str
    categories: dict[str, CurrentCategory]
    mrr_at_risk: MrrAtRisk
    buckets: list[OutcomeBucket]


class AtRiskAccount(BaseModel):
    customer_key: str
    plan: str | None
    account: str | None
    mrr: Money | None
    score: int
    comment_date: str  # when the latest (detractor) answer was submitted


class AtRiskPage(BaseModel):
    dimension: str
    value: str
    order: str
    accounts: list[AtRiskAccount]
    next_cursor: str | None


def register(app: Any, services: Callable[[], Any], security: list[dict[str, list]]) -> None:
    stores: dict[str, OutcomesStore] = {}

    def store() -> OutcomesStore:
        if "store" not in stores:
            aggregates = services().aggregates
            stores["store"] = OutcomesStore(aggregates.table_name, aggregates.client)
        return stores["store"]

    @app.get("/outcomes", security=security, summary="Churn, renewals and MRR by NPS category")
    def get_outcomes(
        dimension: Annotated[str, Query(max_length=40)] = "overall",
        value: Annotated[str | None, Query(max_length=512)] = None,
        granularity: Annotated[Granularity | None, Query()] = None,
        from_: Annotated[date | None, Query(alias="from")] = None,
        to: Annotated[date | None, Query()] = None,
        window: Annotated[str | None, Query(pattern=r"^[1-9][0-9]{0,2}d$")] = None,
    ) -> Outcomes:
        current = services()
        return outcomes_report(
            store(),
            current.dimensions,
            current.today(),
            dimension=dimension,
            value=value,
            granularity=granularity,
            first=from_,
            last=to,
            window=window,
        )

    @app.get(
        "/outcomes/at-risk",
        security=security,
        summary="Active accounts whose latest answer is a detractor, largest MRR or newest first",
    )
    def get_at_risk(
        dimension: Annotated[str, Query(max_length=40)] = "overall",
        value: Annotated[str | None, Query(max_length=512)] = None,
        order: Annotated[Order, Query()] = "mrr",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 25,
        cursor: Annotated[str | None, Query(max_length=2048)] = None,
    ) -> AtRiskPage:
        current = services()
        listing = AtRiskListing(current.records)
        return at_risk_page(listing, current.dimensions, dimension, value, order, limit, cursor)
