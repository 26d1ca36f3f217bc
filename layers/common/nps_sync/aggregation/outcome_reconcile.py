"""Reconcile for revenue outcomes (docs/outcomes.md), three checks from scratch:

1. state: every billing PROFILE's ``outcome`` equals ``derive`` over its stored responses;
2. counters: every outcome counter equals the sum of ``contribution`` over the PROFILE items;
3. at-risk keys: every billing PROFILE carries exactly the ``at_risk_attributes`` of its state
   (the sparse at-risk indexes follow them).

``check_outcomes`` only compares (pure; of the responses it keeps only what ``derive`` reads,
``Answers``; the PROFILEs come from reconcile, read by key, never by a Scan of the table, which
would pass over every raw payload); ``repair_outcomes`` re-derives the state (the stream
then moves counters and index by the difference), sets the counters conditional on them being
unchanged since the scan, and writes the at-risk keys. nps_sync.aggregation.reconcile runs both.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from nps_sync.core.models import StoredProfile, StoredResponse
from nps_sync.core.observability import customer_ref
from nps_sync.core.outcomes import (
    AT_RISK_ATTRIBUTES,
    NOW,
    OutcomeKey,
    Tally,
    add_tallies,
    at_risk_attributes,
    churn_moment,
    contribution,
    derive,
    is_billing_profile,
    is_churned,
    renewal_moments,
    stored_at_risk,
    stored_state,
    subtract,
    to_attribute,
)
from nps_sync.core.periods import STORED
from nps_sync.store.counters import repaired_item, split_sk
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.items import item_key, stored_profile
from nps_sync.store.outcomes import OutcomesStore, tally_of


@dataclass(frozen=True)
class OutcomeDifference:
    kind: str  # state | counters | index
    key: str  # the customer key (state), the counter key, or "<pk>/<sk>" of an index item
    stored: Any
    expected: Any
    customer: str | None = None  # whose it is; shown only as customer_ref
    target: Any = None  # what the repair needs: the billing stamp read, or the OutcomeKey

    def as_dict(self) -> dict[str, Any]:
        """For reports and logs: the customer key (an e-mail, often) replaced by its
        customer_ref wherever it appears (the state's key, index keys and items)."""
        return {
            "outcome": self.kind,
            "key": _scrub(self.key, self.customer),
            "stored": _scrub(self.stored, self.customer),
            "expected": _scrub(self.expected, self.customer),
        }


def _scrub(value: Any, customer: str | None) -> Any:
    if not customer:
        return value
    if isinstance(value, str):
        return value.replace(customer, customer_ref(customer))
    if isinstance(value, Mapping):
        return {k: _scrub(v, customer) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, customer) for v in value]
    return value


# What reconcile reads of a response (the Scan's ProjectionExpression): what derive takes
# from an answer. PROFILE items are read whole, by key (billed whole anyway: per item, rounded
# up to 4 KB).
ANSWER_READS = ("customer_key", "score", "submitted_at", "channel", "survey")


def _moments(profile: StoredProfile) -> tuple[str, ...]:
    """The moments derive looks back at: the churn moment and the renewals."""
    churned = (churn_moment(profile) or "",) if is_churned(profile) else ()
    return (*churned, *renewal_moments(profile))


class Answers:
    """The answers derive reads, folded as responses stream by: per billing customer the latest
    answer, and the latest submitted at or before each of its moments (in derive's order,
    submitted_at then pk). derive over these is derive over all of the customer's responses,
    and memory is O(billing customers x moments), not O(responses)."""

    def __init__(self, profiles: Iterable[StoredProfile]):
        self._moments: dict[str, tuple[str, ...]] = {}
        self._kept: dict[str, dict[str | None, StoredResponse]] = {}
        for profile in profiles:
            self.offer(profile)

    def offer(self, profile: StoredProfile) -> None:
        """A customer's PROFILE, before any of its responses is added (reconcile reads each
        PROFILE when the first of its customer's items passes)."""
        if is_billing_profile(profile):
            self._moments[profile.customer_key] = _moments(profile)

    def add(self, response: StoredResponse) -> None:
        moments = self._moments.get(response.customer_key or "")
        submitted = response.submitted_at
        if moments is None or response.score is None or not submitted:
            return
        kept = self._kept.setdefault(response.customer_key or "", {})
        order = (submitted, response.pk)
        for moment in (None, *moments):
            if moment is not None and submitted > moment:
                continue
            best = kept.get(moment)
            if best is None or ((best.submitted_at or ""), best.pk) < order:
                kept[moment] = response

    def kept(self) -> Iterator[StoredResponse]:
        for kept in self._kept.values():
            yield from {response.pk: response for response in kept.values()}.values()


@dataclass
class OutcomeReport:
    profiles: int = 0
    differences: list[OutcomeDifference] = field(default_factory=list)
    fixed: int = 0


def expected_counters(
    profiles: Iterable[StoredProfile], dimensions: Iterable[str]
) -> dict[OutcomeKey, Tally]:
    dimensions = tuple(dimensions)
    expected: dict[OutcomeKey, Tally] = {}
    for profile in profiles:
        for key, tally in contribution(profile, dimensions).items():
            expected[key] = add_tallies(expected.get(key, {}), tally)
    return expected


def check_outcomes(
    profile_items: Iterable[StoredProfile],
    response_items: Iterable[StoredResponse],
    store_items: Iterable[Mapping[str, Any]],
    dimensions: Iterable[str],
) -> OutcomeReport:
    """Compare, from the scans of RecordsTable (PROFILE and RESP items, as read by
    store/items.py) and of the outcome items of AggregatesTable (as reconcile's one Scan of the
    table reads them). Writes nothing."""
    dimensions = tuple(dimensions)
    report = OutcomeReport()
    profiles = [p for p in profile_items if is_billing_profile(p)]
    report.profiles = len(profiles)
    answers = Answers(profiles)
    for response in response_items:
        answers.add(response)
    by_customer: dict[str, list[StoredResponse]] = {}
    for response in answers.kept():
        by_customer.setdefault(response.customer_key or "", []).append(response)

    for profile in profiles:  # 1. state
        customer = profile.customer_key
        expected = derive(profile, by_customer.get(customer, []))
        if expected != stored_state(profile):
            report.differences.append(
                OutcomeDifference(
                    "state",
                    customer,
                    stored_state(profile),
                    expected,
                    customer=customer,
                    target=profile.billing_updated_at,
                )
            )

    stored_counters: dict[OutcomeKey, Tally] = {}  # a key's items summed
    items: dict[OutcomeKey, dict[int | None, Tally]] = {}  # and by counter shard
    for item in store_items:
        pk, sk = item_key(item)
        granularity, period, shard = split_sk(sk)
        if granularity not in (*STORED, NOW[0]):
            continue  # written before periods.STORED: nothing reads it
        if pk.split("#", 1)[0].removeprefix("outcome:") in dimensions:
            key = OutcomeKey.parse(pk, f"{granularity}#{period}")
            tally = tally_of(dict(item))
            items.setdefault(key, {})[shard] = tally
            summed = add_tallies(stored_counters.get(key, {}), tally)
            stored_counters[key] = {k: v for k, v in summed.items() if v}

    expected_tallies = expected_counters(profiles, dimensions)  # 2. counters
    for key in sorted({*stored_counters, *expected_tallies}):
        stored, expected = stored_counters.get(key, {}), expected_tallies.get(key, {})
        if stored != expected:
            shard, item = repaired_item(items.get(key) or {})
            repaired = add_tallies(subtract(expected, stored), item or {})
            report.differences.append(
                OutcomeDifference(
                    "counters", str(key), stored, expected, target=(key, shard, item, repaired)
                )
            )

    for profile in profiles:  # 3. at-risk keys, against the state as stored
        customer = profile.customer_key
        stored_keys = stored_at_risk(profile)
        expected_keys = at_risk_attributes(profile, stored_state(profile))
        if stored_keys != expected_keys:
            report.differences.append(
                OutcomeDifference(
                    "index",
                    customer,
                    stored_keys,
                    expected_keys,
                    customer=customer,
                    target=profile.billing_updated_at,
                )
            )
    return report


def repair_outcomes(
    differences: Iterable[OutcomeDifference], records: CustomerRecords, store: OutcomesStore
) -> int:
    """Repair what check_outcomes found; the number repaired. A state is written with the
    at-risk keys it implies, so the keys of a customer whose state was wrong follow it."""
    differences = list(differences)
    restated = {d.key for d in differences if d.kind == "state"}
    fixed = 0
    for difference in differences:
        if difference.kind == "counters":
            key, shard, item, repaired = difference.target
            fixed += store.replace(key, shard, item, repaired)
            continue
        if difference.kind == "index" and difference.key in restated:
            continue
        profile = stored_profile(records.profile(difference.key))
        if difference.kind == "state":
            state = difference.expected
            keys = at_risk_attributes(profile, state)
        else:  # the at-risk keys, beside the state as it is
            state = stored_state(profile)
            keys = difference.expected
        derived = {name: keys.get(name) for name in AT_RISK_ATTRIBUTES}
        stamp = to_attribute(difference.target)
        fixed += records.set_outcome(difference.key, to_attribute(state), stamp, derived)
    return fixed
