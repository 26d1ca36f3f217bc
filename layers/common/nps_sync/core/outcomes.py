"""Revenue outcomes by NPS category: a billing customer's outcome state, and what its PROFILE
item adds to the outcome aggregates and to the at-risk index. Pure (docs/outcomes.md).

The outcome aggregates are a function of the PROFILE items' images alone, like the NPS
aggregates are of the response items: delta = contribution(new image) - contribution(old image).
The PROFILE carries the billing inputs (``status``, ``churned_at``, ``renewed_at``,
``billing_since``, written by storage.py) and ``outcome``, the state the aggregator derives from
the customer's responses (``derive``): the latest answer, the category at the churn moment and
at each renewal moment. Images are read as models.StoredProfile and StoredResponse
(store/items.py).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

from nps_sync.core import aggregates
from nps_sync.core.aggregates import OVERALL, UNKNOWN, AggregateKey, Change, Pending, fold_deltas
from nps_sync.core.models import StoredProfile, StoredResponse, category_of
from nps_sync.core.periods import labels, utc_date

CHURNED_STATUSES = frozenset({"cancelled", "canceled", "deleted"})
NO_RESPONSE = "no_response"
CATEGORIES = ("promoter", "passive", "detractor", NO_RESPONSE)
STATE = "outcome"  # the derived attribute on the PROFILE item
BILLING_STAMP = "billing_updated_at"
PK_PREFIX = "outcome:"  # never a dimension name ([a-z0-9_]), so /nps keys cannot collide
NOW = ("now", "now")  # granularity/period of the current (stock) counters
# At-risk listings, largest MRR first or newest answer first: order -> (index, its range key).
AT_RISK_INDEXES = {
    "mrr": ("at_risk_by_mrr", "at_risk_mrr"),
    "recent": ("at_risk_by_recent", "at_risk_recent"),
}
ORDERS = tuple(AT_RISK_INDEXES)
AT_RISK = "at_risk"  # the indexes' hash key: present only on at-risk PROFILE items
AT_RISK_VALUE = "DETRACTOR"
AT_RISK_ATTRIBUTES = (AT_RISK, "at_risk_mrr", "at_risk_recent")
MRR_WIDTH = 16

Tally = dict[str, int]


def is_billing_profile(profile: StoredProfile | None) -> bool:
    """A merged customer PROFILE that billing has written to: the outcome population."""
    return profile is not None and bool(profile.billing_updated_at)


def is_churned(profile: StoredProfile | None) -> bool:
    return profile is not None and (profile.status or "").lower() in CHURNED_STATUSES


def churn_moment(profile: StoredProfile) -> str | None:
    return profile.churned_at or profile.billing_updated_at or None


def renewal_moments(profile: StoredProfile | None) -> list[str]:
    return sorted(profile.renewed_at) if profile is not None else []


# --- the derived state ---------------------------------------------------------------------


def _latest_key(response: StoredResponse) -> tuple[str, str]:
    return (response.submitted_at or "", response.pk)


def _answers(responses: Iterable[StoredResponse]) -> list[StoredResponse]:
    valid = [r for r in responses if r.score is not None and r.submitted_at]
    return sorted(valid, key=_latest_key)


def category_at(answers: list[StoredResponse], moment: str) -> str:
    """The category of the last answer submitted at or before ``moment`` (or no_response)."""
    before = [a for a in answers if (a.submitted_at or "") <= moment]
    if not before:
        return NO_RESPONSE
    return category_of(before[-1].score or 0).value


def derive(profile: StoredProfile, responses: Iterable[StoredResponse]) -> dict[str, Any]:
    """The outcome state of one customer from its PROFILE and its response items."""
    answers = _answers(responses)
    state: dict[str, Any] = {}
    if answers:
        last = answers[-1]
        latest = {
            "score": last.score,
            "category": category_of(last.score or 0).value,
            "submitted_at": last.submitted_at,
            "response": last.pk,
        }
        for name in ("channel", "survey"):  # segments that belong to the answer, not the profile
            if value := getattr(last, name):
                latest[name] = value
        state["latest"] = latest
    if is_churned(profile):
        state["churn_category"] = category_at(answers, churn_moment(profile) or "")
    renewals = renewal_moments(profile)
    if renewals:
        state["renewals"] = {moment: category_at(answers, moment) for moment in renewals}
    return state


def to_attribute(value: Any) -> dict[str, Any]:
    """Plain state -> DynamoDB JSON (strings, integers and maps are all it holds)."""
    if isinstance(value, dict):
        return {"M": {k: to_attribute(v) for k, v in value.items()}}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    return {"S": str(value)}


def stored_state(profile: StoredProfile | None) -> Mapping[str, Any]:
    return profile.outcome if profile is not None else {}


# --- contributions -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class OutcomeKey(AggregateKey):
    """An outcome counter's key: pk ``outcome:<dimension>#<value>``."""

    PREFIX: ClassVar[str] = PK_PREFIX

    def __str__(self) -> str:
        return f"{self.pk}/{self.sk}"


def segment(profile: StoredProfile, state: Mapping[str, Any], dimension: str) -> str:
    """Profile attributes (plan, region, account, …); channel/survey from the latest answer."""
    if dimension == OVERALL:
        return "all"
    if (value := profile.attribute(dimension)) is not None:
        return value
    answered = (state.get("latest") or {}).get(dimension)  # score 0 is a value, not a gap
    return UNKNOWN if answered is None or answered == "" else str(answered)


def _days(timestamp: str) -> int:
    return (utc_date(timestamp) - date(1970, 1, 1)).days


def contribution(
    profile: StoredProfile | None, dimensions: Iterable[str]
) -> dict[OutcomeKey, Tally]:
    """What one PROFILE image adds to the outcome counters (nothing for any other item).

    Current (``now#now``) for an active customer, by its latest category: ``customers#<c>``,
    ``mrr#<c>#<currency>`` and, where ``billing_since`` is known, ``tenure_customers``,
    ``tenure_mrr`` and ``tenure_mrr_days`` (sum of MRR * day number, for the lifetime estimate).
    Per period of the moment: ``churned#<c>`` (category at the churn moment) for a churned
    customer, ``renewals#<c>`` (category at each renewal moment).
    """
    if profile is None or not is_billing_profile(profile):
        return {}
    state = stored_state(profile)
    values = [(d, segment(profile, state, d)) for d in dimensions]
    result: dict[OutcomeKey, Tally] = {}

    def add(granularity: str, period: str, name: str, amount: int) -> None:
        for dimension, value in values:
            tally = result.setdefault(OutcomeKey(dimension, value, granularity, period), {})
            tally[name] = tally.get(name, 0) + amount

    def add_moment(moment: str, name: str) -> None:
        try:
            day = utc_date(moment)
        except ValueError:
            return
        for granularity, period in labels(day).items():
            add(granularity, period, name, 1)

    if not is_churned(profile):
        category = state.get("latest", {}).get("category") or NO_RESPONSE
        add(*NOW, f"customers#{category}", 1)
        mrr, currency = profile.mrr_amount, profile.mrr_currency
        if currency and mrr is not None:
            add(*NOW, f"mrr#{category}#{currency}", mrr)
            since = profile.billing_since
            if since:
                add(*NOW, f"tenure_customers#{category}#{currency}", 1)
                add(*NOW, f"tenure_mrr#{category}#{currency}", mrr)
                add(*NOW, f"tenure_mrr_days#{category}#{currency}", mrr * _days(since))
    elif "churn_category" in state:  # counted once the aggregator has derived the category
        add_moment(churn_moment(profile) or "", f"churned#{state['churn_category']}")
    for moment, category in sorted((state.get("renewals") or {}).items()):
        add_moment(moment, f"renewals#{category}")
    return {key: tally for key, tally in result.items() if any(tally.values())}


def subtract(a: Tally, b: Tally) -> Tally:
    result = dict(a)
    for name, amount in b.items():
        result[name] = result.get(name, 0) - amount
    return {name: amount for name, amount in result.items() if amount}


def add_tallies(a: Tally, b: Tally) -> Tally:
    return subtract(a, {name: -amount for name, amount in b.items()})


def delta(
    old: StoredProfile | None, new: StoredProfile | None, dimensions: Iterable[str]
) -> dict[OutcomeKey, Tally]:
    dimensions = tuple(dimensions)
    before, after = contribution(old, dimensions), contribution(new, dimensions)
    result = {key: subtract(after.get(key, {}), before.get(key, {})) for key in {*before, *after}}
    return {key: tally for key, tally in result.items() if tally}


# --- the at-risk index ---------------------------------------------------------------------


def at_risk_attributes(profile: StoredProfile | None, state: Mapping[str, Any]) -> dict[str, Any]:
    """The PROFILE's keys in RecordsTable's sparse at-risk indexes (one per listing order),
    for an active billing customer whose latest answer is a detractor; none otherwise.

    They sit on the PROFILE itself and are written with the outcome state, so listing the
    at-risk accounts costs index writes only when one of them changes, whatever the number
    of dimensions (a listing by segment filters the index, ``segment`` decides)."""
    if profile is None or not is_billing_profile(profile) or is_churned(profile):
        return {}
    latest = state.get("latest") or {}
    if latest.get("category") != "detractor":
        return {}
    customer = profile.customer_key
    mrr = max(0, profile.mrr_amount or 0)
    at = str(latest.get("submitted_at") or "")
    return {
        AT_RISK: {"S": AT_RISK_VALUE},
        "at_risk_mrr": {"S": f"{mrr:0{MRR_WIDTH}d}#{at}#{customer}"},
        "at_risk_recent": {"S": f"{at}#{customer}"},
    }


def stored_at_risk(profile: StoredProfile | None) -> dict[str, Any]:
    """The at-risk keys the PROFILE carries, in the form at_risk_attributes gives them."""
    if profile is None:
        return {}
    return {name: to_attribute(value) for name, value in profile.at_risk.items()}


# --- applying a batch exactly once (the marks of docs/aggregation.md) -----------------------


def fold(changes: Iterable[Change], dimensions: Iterable[str]) -> dict[OutcomeKey, Pending]:
    dimensions = tuple(dimensions)

    def delta_of(old: StoredProfile | None, new: StoredProfile | None) -> dict[OutcomeKey, Tally]:
        if not (is_billing_profile(old) or is_billing_profile(new)):
            return {}
        return delta(old, new, dimensions)

    return fold_deltas(changes, delta_of)


def apply_key(
    writer: Any, pending: Pending, lane: str, forget: tuple[str, ...] = (), **more
) -> int:
    """aggregates.apply_key with tallies: apply what the item's mark for this lane has not
    seen (``more``: its other options, ``now``)."""
    return aggregates.apply_key(writer, pending, lane, forget, add=add_tallies, zero={}, **more)
