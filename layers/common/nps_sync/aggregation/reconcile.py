"""Recompute every aggregate from the response items and compare with the stored ones.

The offline oracle of the aggregator (tests use it too): a Scan of RecordsTable (responses and
customer PROFILE items), the same ``contribution`` the aggregator uses, and a Scan of
AggregatesTable. Three kinds of difference (docs/aggregation.md "Reconcile"):

- aggregates: stored counters that are not the recomputed ones;
- stale stamps: responses whose stamped segment attributes are not their customer's current
  PROFILE's (the aggregates are computed from the stamps, so a missed stamp hides there);
- revenue outcomes: state, counters, at-risk index (nps_sync.aggregation.outcome_reconcile).

``--fix`` repairs only what two passes ``--settle`` seconds apart both found, identically:
a record still on its way through the stream makes a difference that vanishes or moves
between the passes and is left alone. Aggregates are set conditional on their counters not
having moved since the second scan (the stream marks stay); stale responses are re-stamped
(the stamp flows through the stream and moves the counts).

Run by ReconcileFunction on a schedule and by ``make reconcile`` (nps_sync.cli.reconcile).
Output names customers only by their customer_ref, never by key.
"""

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from nps_sync.aggregation.outcome_reconcile import OutcomeReport, check_outcomes, repair_outcomes
from nps_sync.core.aggregates import ZERO, AggregateKey, Counts, contribution
from nps_sync.core.observability import customer_ref
from nps_sync.core.outcomes import customer_of
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.customers import SEGMENT_ATTRIBUTES, VERSION, CustomerRecords, customer_pk
from nps_sync.store.outcomes import OutcomesStore

DEFAULT_SETTLE_SECONDS = 10.0  # > the stream's usual lag (batching window + one invocation)
STAMP = (*SEGMENT_ATTRIBUTES, VERSION)


@dataclass(frozen=True)
class Difference:
    key: AggregateKey
    stored: Counts | None
    expected: Counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": str(self.key),
            "stored": self.stored.as_dict() if self.stored is not None else None,
            "expected": self.expected.as_dict(),
        }


@dataclass(frozen=True)
class StaleStamp:
    """A response whose stamp is not its customer's current profile (DynamoDB JSON values of
    the segment attributes and profile_version, absent ones left out)."""

    response: str  # the response item's pk
    customer: str
    stamped: dict[str, Any]
    current: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        def shown(values: Mapping[str, Any]) -> dict[str, Any]:
            return {name: next(iter(value.values())) for name, value in sorted(values.items())}

        return {
            "stamp": self.response,
            "customer": customer_ref(self.customer),
            "stamped": shown(self.stamped),
            "current": shown(self.current),
        }


@dataclass
class Report:
    responses: int = 0
    aggregates: int = 0
    differences: list[Difference] = field(default_factory=list)
    fixed: int = 0
    outcomes: OutcomeReport = field(default_factory=OutcomeReport)  # docs/outcomes.md
    stale_stamps: list[StaleStamp] = field(default_factory=list)
    restamped: int = 0
    unsettled: int = 0  # --fix: differences of the second pass the first did not see alike

    @property
    def unresolved(self) -> int:
        return (
            len(self.differences)
            - self.fixed
            + len(self.outcomes.differences)
            - self.outcomes.fixed
            + len(self.stale_stamps)
            - self.restamped
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "responses": self.responses,
            "aggregates": self.aggregates,
            "differences": len(self.differences),
            "fixed": self.fixed,
            "outcome_profiles": self.outcomes.profiles,
            "outcome_differences": len(self.outcomes.differences),
            "outcomes_fixed": self.outcomes.fixed,
            "stale_stamps": len(self.stale_stamps),
            "restamped": self.restamped,
            "unsettled": self.unsettled,
        }


def expected_aggregates(
    response_items: Iterable[Mapping[str, Any]], dimensions: Iterable[str]
) -> dict[AggregateKey, Counts]:
    dimensions = tuple(dimensions)
    expected: dict[AggregateKey, Counts] = {}
    for item in response_items:
        for key, counts in contribution(item, dimensions).items():
            expected[key] = expected.get(key, ZERO) + counts
    return expected


def differences(
    stored: Mapping[AggregateKey, Counts], expected: Mapping[AggregateKey, Counts]
) -> list[Difference]:
    """Every key whose stored counters are not the expected ones (absent counts as zero)."""
    return [
        Difference(key, stored.get(key), expected.get(key, ZERO))
        for key in sorted(set(stored) | set(expected))
        if stored.get(key, ZERO) != expected.get(key, ZERO)
    ]


def stale_stamps(
    response_items: Iterable[Mapping[str, Any]], profile_items: Iterable[Mapping[str, Any]]
) -> list[StaleStamp]:
    """Responses whose plan, region, account, mrr_amount or mrr_currency differ from their
    customer's PROFILE. A customer without a versioned PROFILE has no stamp to compare with
    (the aggregator stamps only from one)."""
    profiles = {customer_of(p): p for p in profile_items if VERSION in p}
    stale = []
    for item in response_items:
        profile = profiles.get(item.get("customer_key", {}).get("S"))
        if profile is None or all(item.get(n) == profile.get(n) for n in SEGMENT_ATTRIBUTES):
            continue
        stale.append(
            StaleStamp(
                item["pk"]["S"],
                item["customer_key"]["S"],
                {n: item[n] for n in STAMP if n in item},
                {n: profile[n] for n in STAMP if n in profile},
            )
        )
    return stale


def survey(records: CustomerRecords, aggregates: AggregatesStore, dimensions: Iterable[str]):
    """One pass: every difference, nothing written."""
    dimensions = tuple(dimensions)
    report = Report()
    items = list(records.responses())
    profiles = list(records.profile_items())
    report.responses = len(items)
    expected = expected_aggregates(items, dimensions)
    stored = {key: counts for key, counts in aggregates.scan() if key.dimension in dimensions}
    report.aggregates = len(stored)
    report.differences = differences(stored, expected)
    report.stale_stamps = stale_stamps(items, profiles)
    outcomes = OutcomesStore(aggregates.table_name, aggregates.client)
    report.outcomes = check_outcomes(profiles, items, outcomes.scan(), dimensions)
    return report


def _alike(first: list, second: list) -> list:
    """The entries of ``second`` that ``first`` holds identically."""

    def signature(entry: Any) -> str:
        return json.dumps(asdict(entry), sort_keys=True, default=str)

    seen = {signature(entry) for entry in first}
    return [entry for entry in second if signature(entry) in seen]


def reconcile(
    records: CustomerRecords,
    aggregates: AggregatesStore,
    dimensions: Iterable[str],
    fix: bool = False,
    settle_seconds: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """Report every difference; with ``fix``, pass again after ``settle_seconds`` and repair
    what both passes found alike (the report is the second pass's)."""
    dimensions = tuple(dimensions)
    first = survey(records, aggregates, dimensions)
    if not fix or first.unresolved == 0:
        return first
    sleep(settle_seconds)
    report = survey(records, aggregates, dimensions)
    settled = _alike(first.differences, report.differences)
    settled_outcomes = _alike(first.outcomes.differences, report.outcomes.differences)
    settled_stamps = _alike(first.stale_stamps, report.stale_stamps)
    for difference in settled:
        report.fixed += aggregates.replace(difference.key, difference.stored, difference.expected)
    outcomes = OutcomesStore(aggregates.table_name, aggregates.client)
    report.outcomes.fixed = repair_outcomes(settled_outcomes, records, outcomes)
    for stale in settled_stamps:
        report.restamped += records.restamp(
            {"pk": {"S": stale.response}, **stale.stamped},
            {"pk": {"S": customer_pk(stale.customer)}, **stale.current},
        )
    report.unsettled = (
        len(report.differences)
        + len(report.outcomes.differences)
        + len(report.stale_stamps)
        - len(settled)
        - len(settled_outcomes)
        - len(settled_stamps)
    )
    return report
