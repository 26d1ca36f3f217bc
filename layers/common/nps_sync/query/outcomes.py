"""GET /outcomes and GET /outcomes/at-risk, from the stored outcome counters (docs/outcomes.md).

Churn rate of a category in a period = churned in the period / customers at risk in it, where
at risk = the category's customers active now + those that churned from the period's start on
(customers who had churned before the period are not at risk in it). The gap between
detractors' and promoters' churn rates gets a 95 % Newcombe (hybrid Wilson score) interval.
"""

import math
from collections.abc import Iterable
from datetime import date
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from nps_sync.core.aggregates import OVERALL
from nps_sync.core.errors import BadRequest
from nps_sync.core.nps import Z_95
from nps_sync.core.outcomes import CATEGORIES, NOW, ORDERS, Tally, add_tallies
from nps_sync.core.periods import ALL, label
from nps_sync.query.ranges import SeriesQuery, asked_range, segment_value

DAYS_PER_MONTH = 30.4375


class OutcomeReader(Protocol):
    def series(
        self, dimension: str, value: str, granularity: str, first: str | None, last: str | None
    ) -> dict[str, Tally]: ...

    def at_risk(
        self, dimension: str, value: str, order: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]: ...


# --- the answers (GET /outcomes, GET /outcomes/at-risk) ----------------------------------------


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


# --- statistics ----------------------------------------------------------------------------


def wilson(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z_95) -> tuple[float, float, float]:
    """p1 - p2 with its Newcombe hybrid score interval (method 10, Newcombe 1998)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    difference = p1 - p2
    low = difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return difference, low, high


def churn_gap(churned: dict[str, int], at_risk: dict[str, int]) -> dict[str, Any]:
    """Detractors' churn rate minus promoters', in percentage points, with its 95 % interval."""
    body: dict[str, Any] = {"difference": None, "low": None, "high": None, "significant": None}
    body["method"] = "newcombe-wilson-95"
    if at_risk["detractor"] > 0 and at_risk["promoter"] > 0:
        difference, low, high = newcombe(
            churned["detractor"], at_risk["detractor"], churned["promoter"], at_risk["promoter"]
        )
        body.update(
            difference=round(difference * 100, 2),
            low=round(low * 100, 2),
            high=round(high * 100, 2),
            significant=low > 0 or high < 0,
        )
    return body


# --- the report ----------------------------------------------------------------------------


def _by_prefix(tally: Tally, prefix: str) -> Tally:
    return {name.removeprefix(prefix): v for name, v in tally.items() if name.startswith(prefix)}


def current(stock: Tally, today: date) -> dict[str, Any]:
    """Per category: customers, MRR and average lifetime revenue, per currency."""
    day = (today - date(1970, 1, 1)).days
    categories = {}
    for category in CATEGORIES:
        mrr = _by_prefix(stock, f"mrr#{category}#")
        lifetime = []
        for currency, n in sorted(_by_prefix(stock, f"tenure_customers#{category}#").items()):
            if n <= 0:
                continue
            total_mrr = stock.get(f"tenure_mrr#{category}#{currency}", 0)
            weighted = stock.get(f"tenure_mrr_days#{category}#{currency}", 0)
            revenue = max(0, day * total_mrr - weighted) / DAYS_PER_MONTH
            lifetime.append({"amount": round(revenue / n), "currency": currency, "customers": n})
        categories[category] = {
            "customers": stock.get(f"customers#{category}", 0),
            "mrr": [{"amount": a, "currency": c} for c, a in sorted(mrr.items()) if a],
            "avg_lifetime_revenue": lifetime,
        }
    return categories


def bucket(period: str, flows: Tally, since: Tally, stock: Tally) -> dict[str, Any]:
    churned = {c: flows.get(f"churned#{c}", 0) for c in CATEGORIES}
    at_risk = {c: stock.get(f"customers#{c}", 0) + since.get(f"churned#{c}", 0) for c in CATEGORIES}
    categories = {
        c: {
            "churned": churned[c],
            "at_risk": at_risk[c],
            "churn_rate": round(churned[c] / at_risk[c] * 100, 2) if at_risk[c] else None,
            "renewals": flows.get(f"renewals#{c}", 0),
        }
        for c in CATEGORIES
    }
    return {"period": period, "categories": categories, "churn_gap": churn_gap(churned, at_risk)}


def _suffix_sums(stored: dict[str, Tally], periods: list[str]) -> dict[str, Tally]:
    """For each period: the churn counters of it and of every later stored period."""
    result: dict[str, Tally] = {}
    running: Tally = {}
    later = sorted(stored, reverse=True)
    for period in sorted(periods, reverse=True):
        while later and later[0] >= period:
            running = add_tallies(running, stored[later.pop(0)])
        result[period] = running
    return result


def outcomes_report(
    reader: OutcomeReader,
    dimensions: Iterable[str],
    today: date,
    query: SeriesQuery = SeriesQuery(),
) -> dict[str, Any]:
    dimension, window = query.dimension, query.window
    value = segment_value(dimensions, dimension, query.value)
    stock = reader.series(dimension, value, NOW[0], NOW[1], NOW[1]).get(NOW[1], {})
    categories = current(stock, today)
    body: dict[str, Any] = {
        "dimension": dimension,
        "value": value,
        "as_of": today.isoformat(),
        "categories": categories,
        "mrr_at_risk": {
            "customers": categories["detractor"]["customers"],
            "mrr": categories["detractor"]["mrr"],
        },
    }
    asked = asked_range(today, query.granularity, query.first, query.last, window)
    if asked.window is not None:
        last_day = label("day", asked.last)
        stored = reader.series(dimension, value, "day", label("day", asked.first), None)
        flows = {}
        for period, tally in stored.items():
            if period <= last_day:
                flows = add_tallies(flows, tally)
        since = {}
        for tally in stored.values():
            since = add_tallies(since, tally)
        body.update(granularity="day", window=window, **asked.dates())
        body["buckets"] = [bucket(window, flows, since, stock)]
        return body
    body["granularity"] = asked.granularity
    if asked.granularity == ALL:
        flows = reader.series(dimension, value, ALL, ALL, ALL).get(ALL, {})
        body["buckets"] = [bucket(ALL, flows, flows, stock)]
        return body
    if asked.periods is None:
        stored = reader.series(dimension, value, asked.granularity, None, None)
        periods = sorted(stored)
    else:
        periods = list(asked.periods)
        stored = reader.series(dimension, value, asked.granularity, periods[0], None)
        body.update(asked.dates())
    since = _suffix_sums(stored, periods)
    body["buckets"] = [bucket(p, stored.get(p, {}), since.get(p, {}), stock) for p in periods]
    return body


def at_risk_page(
    reader: OutcomeReader,
    dimensions: Iterable[str],
    dimension: str = OVERALL,
    value: str | None = None,
    order: str = "mrr",
    limit: int = 25,
    cursor: str | None = None,
) -> dict[str, Any]:
    value = segment_value(dimensions, dimension, value)
    if order not in ORDERS:
        raise BadRequest(f"order must be one of {', '.join(ORDERS)}")
    items, next_cursor = reader.at_risk(dimension, value, order, limit, cursor)
    accounts = []
    for item in items:
        currency = item.get("mrr_currency", {}).get("S")
        accounts.append(
            {
                "customer_key": item["customer_key"]["S"],
                "plan": item.get("plan", {}).get("S"),
                "account": item.get("account", {}).get("S"),
                "mrr": (
                    {"amount": int(item["mrr_amount"]["N"]), "currency": currency}
                    if currency
                    else None
                ),
                "score": int(item["score"]["N"]),
                "comment_date": item["submitted_at"]["S"],
            }
        )
    return {
        "dimension": dimension,
        "value": value,
        "order": order,
        "accounts": accounts,
        "next_cursor": next_cursor,
    }
