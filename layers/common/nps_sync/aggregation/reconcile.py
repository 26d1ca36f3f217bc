"""Recompute every aggregate from the response items and compare with the stored ones.

The offline oracle of the aggregator (tests use it too): the customer PROFILE items (a Scan
of RecordsTable), the responses (a Scan of its by_customer index, which no raw payload is in),
both as parallel segments and folded as their pages arrive, the same ``contribution`` the
aggregator uses, and a Scan of AggregatesTable (docs/aggregation.md "What it reads"). Three
kinds of difference (docs/aggregation.md "Reconcile"):

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

from nps_sync.aggregation.outcome_reconcile import (
    ANSWER_READS,
    PROFILE_READS,
    Answers,
    OutcomeReport,
    check_outcomes,
    repair_outcomes,
)
from nps_sync.core.aggregates import ZERO, AggregateKey, Counts, contribution
from nps_sync.core.models import RESPONSE_ATTRIBUTES, StoredProfile, StoredResponse
from nps_sync.core.observability import customer_ref
from nps_sync.core.outcomes import to_attribute
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.customers import SEGMENT_ATTRIBUTES, VERSION, CustomerRecords, customer_pk
from nps_sync.store.items import stored_profile, stored_response
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


class Sums:
    """``contribution`` summed per aggregate key as responses stream by, in plain integer
    lists: a new Counts per addition made this fold ~3x slower."""

    def __init__(self, dimensions: Iterable[str]):
        self.dimensions = tuple(dimensions)
        self._sums: dict[AggregateKey, list[int]] = {}

    def add(self, response: StoredResponse) -> None:
        sums, last, values = self._sums, None, ()
        for key, counts in contribution(response, self.dimensions).items():
            if counts is not last:
                last, values = counts, counts.values()
            total = sums.get(key)
            if total is None:
                sums[key] = list(values)
            else:
                for i, value in enumerate(values):
                    total[i] += value

    def counts(self) -> dict[AggregateKey, Counts]:
        return {key: Counts(*total) for key, total in self._sums.items()}


def differences(
    stored: Mapping[AggregateKey, Counts], expected: Mapping[AggregateKey, Counts]
) -> list[Difference]:
    """Every key whose stored counters are not the expected ones (absent counts as zero)."""
    return [
        Difference(key, stored.get(key), expected.get(key, ZERO))
        for key in sorted(set(stored) | set(expected))
        if stored.get(key, ZERO) != expected.get(key, ZERO)
    ]


def _stamp(record: StoredResponse | StoredProfile) -> dict[str, Any]:
    """Its segment attributes and profile_version as a stamp writes them (absent left out)."""
    values = {name: getattr(record, name) for name in STAMP}
    return {name: to_attribute(value) for name, value in values.items() if value is not None}


def _versioned(profiles: Iterable[StoredProfile]) -> dict[str, StoredProfile]:
    return {p.customer_key: p for p in profiles if p.profile_version is not None}


def _stale(response: StoredResponse, versioned: Mapping[str, StoredProfile]) -> StaleStamp | None:
    key = response.customer_key
    profile = versioned.get(key) if key is not None else None
    if profile is None or all(
        getattr(response, n) == getattr(profile, n) for n in SEGMENT_ATTRIBUTES
    ):
        return None
    return StaleStamp(response.pk, profile.customer_key, _stamp(response), _stamp(profile))


def response_reads(dimensions: Iterable[str]) -> tuple[str, ...]:
    """The response attributes reconcile reads: the counted dimensions' (contribution), the
    stamp, and what the outcome state takes from an answer (core.outcomes.derive)."""
    counted = (d for d in dimensions if d in RESPONSE_ATTRIBUTES)
    return tuple(dict.fromkeys((*ANSWER_READS, *STAMP, *counted)))


def survey(records: CustomerRecords, aggregates: AggregatesStore, dimensions: Iterable[str]):
    """One pass: every difference, nothing written.

    Streams: the PROFILE items first (kept, O(customers)), then the responses page by page as
    the parallel Scan segments deliver them, each folded at once into the expected counters
    (O(aggregate keys)), checked against its customer's stamp and offered to the outcome fold
    (which keeps only the few answers the outcome state reads per billing customer). No list
    of the responses is ever held."""
    dimensions = tuple(dimensions)
    report = Report()
    profiles = [p for p in map(stored_profile, records.profile_items(PROFILE_READS)) if p]
    versioned = _versioned(profiles)
    answers = Answers(profiles)
    expected = Sums(dimensions)
    stale: list[StaleStamp] = []
    for item in records.responses(response_reads(dimensions)):
        response = stored_response(item)
        if response is None:
            continue
        report.responses += 1
        expected.add(response)
        if (found := _stale(response, versioned)) is not None:
            stale.append(found)
        answers.add(response)
    stored = {key: counts for key, counts in aggregates.scan() if key.dimension in dimensions}
    report.aggregates = len(stored)
    report.differences = differences(stored, expected.counts())
    report.stale_stamps = sorted(stale, key=lambda s: s.response)
    outcomes = OutcomesStore(aggregates.table_name, aggregates.client)
    report.outcomes = check_outcomes(profiles, answers.kept(), outcomes.scan(), dimensions)
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
            {"pk": to_attribute(stale.response), **stale.stamped},
            {"pk": to_attribute(customer_pk(stale.customer)), **stale.current},
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
